"""Input and output shapes of the sweeps API.

The input serializer checks the whole sweep before anything is stored: the space's
syntax and size (jobs/search_space.py; TENSORFLEET_MAX_SWEEP_* settings), that every
searched field is a job field, that a grid fits the trial budget, and that the trials
are valid jobs — each distinct value of each searched field (both ends of a range, each
choice) once with the job field's own rules, then every planned trial with the job's
rules across fields — with the jobs API's own validator, so a field's message says what
is wrong where it is written. The work is the values written plus trials x fields.
Measured on 2 cores: when every value and every trial went through the whole job
serializer, a 50,000-value choice took 10-17 s and a 20,000-point grid 9-10 s (both
accepted); a sweep at the limits (1,000 values, 1,000 trials) 0.6-1.1 s. Now the first
two are refused in 0.07 s and the third takes 0.03 s.
"""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs.models import Job, Status, Sweep
from jobs.projects import ProjectField, TagsField, note_field
from jobs.search_space import SpaceError, grid_check, grid_size, trial_point, value_key
from jobs.serializers import CheckpointSerializer, JobCreateSerializer, StrictSerializer
from jobs.services import sweeps
from jobs.sweep_checks import (
    UNSEEN,
    combinations_check,
    dataset_ref,
    error_messages,
    field_value,
    space_parsed,
    values_check,
)

MAX_CONCURRENT = 256
NOT_SEARCHABLE = ("name",)  # trials are named after their sweep
ORGANISE = ("project", "tags", "note")  # the sweep's own; its trials take its project and tags


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
        min_value=1,
        max_value=settings.TENSORFLEET_MAX_SWEEP_TRIALS,
        required=False,
        help_text="the trial budget (a grid: its size by default)",
    )
    max_concurrent = serializers.IntegerField(min_value=1, max_value=MAX_CONCURRENT, default=4)
    metric = serializers.ChoiceField(choices=sweeps.METRICS, default="val_accuracy")
    mode = serializers.ChoiceField(
        choices=Sweep.Mode.choices, required=False, help_text="max for val_accuracy, min for losses by default"
    )
    early_stopping = EarlyStoppingSerializer(required=False, allow_null=True, default=None)
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0, help_text="seeds the sampling")
    project = ProjectField(required=False, allow_null=True, default=None, help_text="its trials go there too")
    tags = TagsField(required=False, default=list, help_text="the sweep's and its trials' tags")
    note = note_field()

    def validate_trials(self, value: int) -> int:
        limit = settings.TENSORFLEET_MAX_SWEEP_TRIALS  # read here too: the field's bound is fixed at import
        if value > limit:
            raise serializers.ValidationError(f"Ensure this value is less than or equal to {limit}.")
        return value

    def validate_space(self, value: dict) -> dict:
        params = space_parsed(value)
        job_fields = JobCreateSerializer().fields
        errors = {}
        for field, param in params.items():
            if field not in job_fields:
                errors[field] = [self.unknown_field_message(field, job_fields)]
            elif field in NOT_SEARCHABLE:
                errors[field] = ["Not a hyperparameter: trials are named after the sweep."]
            elif field in ORGANISE:
                errors[field] = [f"Not a hyperparameter: give {field} on the sweep; its trials take it."]
            elif param.kind in ("uniform", "log_uniform") and isinstance(job_fields[field], serializers.IntegerField):
                errors[field] = [f"{field} takes integers: use int_uniform or choice."]
        if errors:
            raise serializers.ValidationError(errors)
        return value

    def validate(self, attrs):
        owner = self.context.get("owner")
        base, space = dict(attrs.get("base") or {}), dict(attrs["space"])
        params = space_parsed(space)
        given = set(base) | ({"dataset"} if "dataset_path" in base else set())
        if given & set(ORGANISE):
            raise serializers.ValidationError(
                {
                    "base": {
                        f: [f"Give {f} on the sweep itself; its trials take it."] for f in sorted(given & set(ORGANISE))
                    }
                }
            )
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
            limit = settings.TENSORFLEET_MAX_SWEEP_TRIALS
            size = grid_size(params, limit=limit)  # multiplied, never enumerated
            if size is None:
                raise serializers.ValidationError(
                    {"space": [f"The grid has more than {limit} points; the limit is {limit} trials."]}
                )
            if trials is not None and size > trials:
                raise serializers.ValidationError(
                    {"trials": [f"The grid has {size} points, more than the budget of {trials} trials."]}
                )
            trials = size
        elif trials is None:
            raise serializers.ValidationError({"trials": [f"This field is required for {attrs['search']} search."]})

        job = JobCreateSerializer(context={"owner": owner})
        base, space, reference, values = self._check_fields(job, base, space, params)
        longest = self._check_trials(job, reference, values, params, attrs["search"], attrs["seed"], trials)

        stopping = attrs.get("early_stopping")
        if stopping and longest <= stopping["grace_epochs"]:
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

    def _check_fields(self, job, base: dict, space: dict, params: dict) -> tuple[dict, dict, dict, dict]:
        """Validate the base with every searched field at its first value, then each value
        (``values_check``) and each value across fields (``combinations_check``): the cost is
        the values written, not the trials. Returns base and space with datasets resolved to
        ids, the reference spec and each field's validated values by ``value_key``."""
        first = {field: param.extremes()[0] for field, param in params.items()}
        base_errors: dict[str, list[str]] = {}
        space_errors: dict[str, list[str]] = {}

        def note(where: dict, field: str, message: str) -> None:
            if message not in where.setdefault(field, []):
                where[field].append(message)

        def note_base(exc: serializers.ValidationError) -> None:
            for field, messages in error_messages(exc).items():
                if field not in params:  # a searched field's trouble is reported by its own probes below
                    for m in messages:
                        note(base_errors, field, m)

        reference = None
        try:
            reference = dict(job.to_internal_value({**base, **first}))
            job.validate(dict(reference))
        except serializers.ValidationError as exc:
            note_base(exc)
        if base_errors:
            raise serializers.ValidationError({"base": base_errors})

        values = values_check(job, params, note, space_errors)
        if reference is None:  # every field's value is valid on its own, so the base's fields were not
            raise serializers.ValidationError({"base": ["Not a valid job spec."]})
        combinations_check(job, params, reference, values, note, space_errors)

        if "dataset" in base or "dataset_path" in base:
            given = base.pop("dataset_path", None) or base.get("dataset")
            base["dataset"] = dataset_ref(reference["dataset"], given)
        if "dataset" in params and params["dataset"].kind in ("choice", "fixed"):
            refs = [dataset_ref(values["dataset"][value_key(v)], v) for v in params["dataset"].values]
            space["dataset"] = {"choice": refs} if params["dataset"].kind == "choice" else refs[0]
        return base, space, reference, values

    @staticmethod
    def _check_trials(job, reference: dict, values: dict, params: dict, search: str, seed: int, trials: int) -> int:
        """Every planned trial passes the job's rules across fields (e.g. cnn with a tabular
        dataset, only in one combination of two choices). Each value was validated once by
        ``_check_fields``; a trial looks its values up (or, sampled from a range, checks the
        one field), so this costs trials x fields. Returns the most epochs a trial trains."""
        longest = 0
        for index in range(trials):
            point = trial_point(params, search=search, seed=seed, index=index)
            spec = dict(reference)
            for field, value in point.items():
                known = values[field].get(value_key(value), UNSEEN)
                spec[field] = known if known is not UNSEEN else field_value(job, field, value)
            try:
                job.validate(spec)
            except serializers.ValidationError as exc:
                reason = "; ".join(f"{f}: {' '.join(m)}" for f, m in error_messages(exc).items())
                raise serializers.ValidationError(
                    {"space": [f"Trial {index + 1} {point} is not a valid job: {reason}"]}
                ) from None
            longest = max(longest, spec["epochs"])
        return longest


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
        assert job.sweep is not None  # trials only
        return sweeps.trial_params(job, job.sweep)

    def get_metric(self, job: Job) -> float | None:
        assert job.sweep is not None
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
    project = serializers.UUIDField(source="project_id", read_only=True, allow_null=True)
    tags = TagsField(read_only=True)
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
            "project",
            "tags",
            "note",
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
    def get_trial_jobs(self, sweep: Sweep):
        trials = Job.objects.filter(sweep=sweep).select_related("sweep").order_by("trial_number")
        return SweepTrialSerializer(trials, many=True, context=self.context).data
