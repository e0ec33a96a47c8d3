"""Input and output shapes of the sweeps API.

The input serializer checks the whole sweep before anything is stored: the space's
syntax (jobs/search_space.py), that every searched field is a job field, that a grid
fits the trial budget, and that the trials are valid jobs — each searched field at both
ends of its range or at each of its choices, then every planned trial — with the jobs
API's own validator, so a field's message says what is wrong where it is written.
"""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs.services import sweeps
from jobs.models import Job, Status, Sweep
from jobs.search_space import CONTINUOUS, SpaceError, grid_check, grid_size, parse_space, trial_point
from jobs.serializers import CheckpointSerializer, JobCreateSerializer, StrictSerializer

MAX_TRIALS = 1000
MAX_CONCURRENT = 256
NOT_SEARCHABLE = ("name",)  # trials are named after their sweep


class EarlyStoppingSerializer(StrictSerializer):
    type = serializers.ChoiceField(choices=["asha"], help_text="asynchronous successive halving")
    grace_epochs = serializers.IntegerField(min_value=1, max_value=10000, default=1, help_text="the first rung")
    reduction_factor = serializers.IntegerField(
        min_value=2, max_value=100, default=3, help_text="rungs every x this many epochs; the top 1/x go on"
    )


class SweepCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    base = serializers.DictField(required=False, default=dict, help_text="job fields every trial shares")
    space = serializers.DictField(
        help_text="job field -> {choice: [...]}, {uniform: [lo, hi]}, {log_uniform: [lo, hi]}, "
        "{int_uniform: [lo, hi]} or a fixed value"
    )
    search = serializers.ChoiceField(choices=Sweep.Search.choices, default=Sweep.Search.RANDOM)
    trials = serializers.IntegerField(
        min_value=1, max_value=MAX_TRIALS, required=False, help_text="the trial budget (a grid: its size by default)"
    )
    max_concurrent = serializers.IntegerField(min_value=1, max_value=MAX_CONCURRENT, default=4)
    metric = serializers.ChoiceField(choices=sweeps.METRICS, default="val_accuracy")
    mode = serializers.ChoiceField(
        choices=Sweep.Mode.choices, required=False, help_text="max for val_accuracy, min for losses by default"
    )
    early_stopping = EarlyStoppingSerializer(required=False, allow_null=True, default=None)
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0, help_text="seeds the sampling")

    def validate_space(self, value: dict) -> dict:
        try:
            params = parse_space(value)
        except SpaceError as exc:
            raise serializers.ValidationError(exc.errors) from None
        job_fields = JobCreateSerializer().fields
        errors = {}
        for field, param in params.items():
            if field not in job_fields:
                errors[field] = ["Unknown field."]
            elif field in NOT_SEARCHABLE:
                errors[field] = ["Not a hyperparameter: trials are named after the sweep."]
            elif param.kind in ("uniform", "log_uniform") and isinstance(job_fields[field], serializers.IntegerField):
                errors[field] = [f"{field} takes integers: use int_uniform or choice."]
        if errors:
            raise serializers.ValidationError(errors)
        return value

    def validate(self, attrs):
        owner = self.context.get("owner")
        base, space = dict(attrs.get("base") or {}), dict(attrs["space"])
        params = parse_space(space)
        given = set(base) | ({"dataset"} if "dataset_path" in base else set())
        both = sorted(set(params) & given)
        if both:
            raise serializers.ValidationError(
                {"space": {f: ["Also given in base; give it in one place."] for f in both}}
            )

        trials = attrs.get("trials")
        if attrs["search"] == Sweep.Search.GRID:
            try:
                grid_check(params)
            except SpaceError as exc:
                raise serializers.ValidationError({"space": exc.errors}) from None
            size = grid_size(params)
            if trials is not None and size > trials:
                raise serializers.ValidationError(
                    {"trials": [f"The grid has {size} points, more than the budget of {trials} trials."]}
                )
            trials = size
        elif trials is None:
            raise serializers.ValidationError({"trials": ["This field is required for random search."]})

        base, space = self._check_fields(owner, base, space, params)
        planned = self._check_trials(owner, base, space, attrs["search"], attrs["seed"], trials, attrs.get("name", ""))

        stopping = attrs.get("early_stopping")
        if stopping and all(spec["epochs"] <= stopping["grace_epochs"] for spec in planned):
            raise serializers.ValidationError(
                {"early_stopping": {"grace_epochs": ["No trial gets past it: it must be below the trials' epochs."]}}
            )
        return {
            **attrs,
            "base": base,
            "space": space,
            "trials": trials,
            "mode": attrs.get("mode") or sweeps.DEFAULT_MODE[attrs["metric"]],
            "early_stopping": dict(stopping) if stopping else None,
        }

    def _check_fields(self, owner, base: dict, space: dict, params: dict) -> tuple[dict, dict]:
        """Validate the base, and each searched field at each of its choices or range ends,
        with the other fields at their first value. Errors land under ``base`` or ``space``
        by where the field was written; a combination error under the field that changed.
        Returns base and space with datasets resolved to ids (an import happens once)."""
        reference = {field: param.extremes()[0] for field, param in params.items()}
        base_errors: dict[str, list[str]] = {}
        space_errors: dict[str, list[str]] = {}

        def note(where: dict, field: str, message: str) -> None:
            if message not in where.setdefault(field, []):
                where[field].append(message)

        spec = JobCreateSerializer(data={**base, **reference}, context={"owner": owner})
        if not spec.is_valid():
            for field, messages in spec.errors.items():
                if field not in params:  # a searched field's trouble is reported by its own probes below
                    for m in messages:
                        note(base_errors, field, str(m))
        else:
            base = self._resolved_dataset(base, spec.validated_data, "dataset" in base or "dataset_path" in base)
        if base_errors:
            raise serializers.ValidationError({"base": base_errors})

        for field, param in params.items():
            values = list(param.extremes())
            for i, value in enumerate(values):
                spec = JobCreateSerializer(data={**base, **reference, field: value}, context={"owner": owner})
                if spec.is_valid():
                    if field == "dataset" and param.kind in ("choice", "fixed"):
                        values[i] = self._dataset_id(spec.validated_data["dataset"], value)
                    continue
                for bad, messages in spec.errors.items():
                    if bad != field and bad in params:
                        continue  # another searched field at its reference value: its own probes say it
                    label = "low" if param.kind in CONTINUOUS and i == 0 else "high" if param.kind in CONTINUOUS else ""
                    shown = f"{label} {value!r}" if label else repr(value)
                    for m in messages:
                        note(space_errors, field, f"{shown}: {m}" if bad == field else f"{shown}: {bad}: {m}")
            if field == "dataset" and param.kind in ("choice", "fixed"):
                space[field] = {"choice": values} if param.kind == "choice" else values[0]
        if space_errors:
            raise serializers.ValidationError({"space": space_errors})
        return base, space

    @staticmethod
    def _dataset_id(resolved, given):
        """A user's dataset by its id: trials find it without importing it again."""
        return given if isinstance(resolved, str) else str(resolved.id)

    def _resolved_dataset(self, base: dict, validated: dict, in_base: bool) -> dict:
        if not in_base:
            return base
        given = base.pop("dataset_path", None) or base.get("dataset")
        base["dataset"] = self._dataset_id(validated["dataset"], given)
        return base

    def _check_trials(self, owner, base, space, search, seed, trials, name) -> list[dict]:
        """Every planned trial is a valid job (catches combinations, e.g. cnn with a tabular dataset)."""
        planned = []
        for number in range(1, trials + 1):
            data = sweeps.trial_data(base=base, space=space, search=search, seed=seed, number=number, name=name)
            try:
                planned.append(sweeps.trial_validate(owner=owner, data=data))
            except sweeps.TrialSpecInvalid as exc:
                point = trial_point(parse_space(space), search=search, seed=seed, index=number - 1)
                raise serializers.ValidationError(
                    {"space": [f"Trial {number} {point} is not a valid job: {exc}"]}
                ) from None
        return planned


class SweepTrialSerializer(serializers.ModelSerializer):
    """One trial: its job, the values it tried, where it stands, its metric."""

    job_id = serializers.UUIDField(source="id", read_only=True)
    url = serializers.HyperlinkedIdentityField(view_name="job-detail")
    reason = serializers.CharField(source="error", read_only=True, help_text='"early-stopped" when ASHA stopped it')
    params = serializers.SerializerMethodField()
    metric = serializers.SerializerMethodField(help_text="the sweep's metric at the trial's last recorded epoch")

    class Meta:
        model = Job
        fields = [
            "trial_number",
            "job_id",
            "url",
            "status",
            "reason",
            "params",
            "metric",
            "completed_epochs",
            "epochs",
            "val_accuracy",
            "val_loss",
            "train_loss",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_params(self, job: Job) -> dict:
        return sweeps.trial_params(job, job.sweep)

    def get_metric(self, job: Job) -> float | None:
        return getattr(job, job.sweep.metric)


class SweepBestSerializer(serializers.Serializer):
    trial_number = serializers.IntegerField()
    job_id = serializers.UUIDField()
    url = serializers.CharField()
    metric = serializers.FloatField()
    spec = serializers.DictField(help_text="the trial's job spec: POST it to /jobs to train it again")
    checkpoint = CheckpointSerializer(allow_null=True, help_text="its final checkpoint, or its last epoch's")


class SweepSerializer(serializers.ModelSerializer):
    url = serializers.HyperlinkedIdentityField(view_name="sweep-detail")
    owner = serializers.CharField(source="owner.get_username", read_only=True)
    trials = serializers.IntegerField(source="max_trials", read_only=True, help_text="the trial budget")
    counts = serializers.SerializerMethodField(help_text="trials by status; pending: not started yet")
    best = serializers.SerializerMethodField()

    class Meta:
        model = Sweep
        fields = [
            "id",
            "url",
            "name",
            "owner",
            "status",
            "search",
            "base",
            "space",
            "trials",
            "max_concurrent",
            "metric",
            "mode",
            "early_stopping",
            "seed",
            "counts",
            "best",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_counts(self, sweep: Sweep) -> dict:
        counts = {s: 0 for s in Status.values} | {"early_stopped": 0}
        for status, error in Job.objects.filter(sweep=sweep).values_list("status", "error"):
            counts[status] += 1
            counts["early_stopped"] += status == Status.CANCELLED and error == sweeps.EARLY_STOPPED
        counts["pending"] = max(sweep.max_trials - sum(counts[s] for s in Status.values), 0)
        return counts

    @extend_schema_field(SweepBestSerializer(allow_null=True))
    def get_best(self, sweep: Sweep) -> dict | None:
        job = sweep.best_trial
        if job is None:
            return None
        checkpoint = job.checkpoints.order_by("-kind", "-epoch").first()  # "final" sorts after "epoch"
        request = self.context.get("request")
        path = reverse("job-detail", kwargs={"pk": job.id})
        return {
            "trial_number": job.trial_number,
            "job_id": job.id,
            "url": request.build_absolute_uri(path) if request else path,
            "metric": sweep.best_metric,
            "spec": sweeps.trial_spec(job),
            "checkpoint": CheckpointSerializer(checkpoint, context=self.context).data if checkpoint else None,
        }


class SweepDetailSerializer(SweepSerializer):
    trial_jobs = serializers.SerializerMethodField(help_text="every trial started so far, by trial number")

    class Meta(SweepSerializer.Meta):
        fields = SweepSerializer.Meta.fields + ["trial_jobs"]
        read_only_fields = fields

    @extend_schema_field(SweepTrialSerializer(many=True))
    def get_trial_jobs(self, sweep: Sweep) -> list[dict]:
        trials = Job.objects.filter(sweep=sweep).select_related("sweep").order_by("trial_number")
        return SweepTrialSerializer(trials, many=True, context=self.context).data
