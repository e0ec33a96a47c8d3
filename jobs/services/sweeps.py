"""Hyperparameter sweeps: writes, the trial scheduler, early stopping and the best trial.

A sweep's trials are ordinary jobs (``Job.sweep``, ``Job.trial_number``), created one
by one as slots free up, so at most ``max_concurrent`` are queued or running. Nothing
polls: the lifecycle calls two hooks,

* ``on_epoch_recorded(job_id, epoch)`` after an epoch is recorded
  (``jobs.services.epochs.epoch_finished``): ASHA decides whether the trial goes on; a trial that falls behind
  at a rung is cancelled with ``error = "early-stopped"`` (its checkpoints stay). At a
  rung the next epoch waits for that decision (``next_epoch_held``);
* ``on_trial_finished(job_id)`` when a trial ends (the ``jobs.signals.job_ended`` signal,
  sent by ``epoch_record``, ``job_fail`` and ``job_cancel``): the next trials start, the best trial and the sweep's status follow.

Both are no-ops for jobs outside a sweep. Every decision is taken holding the sweep's
row lock, so two trials ending at once on two workers cannot overfill the slots. The
reconciler calls ``sweeps_reconcile`` as a safety net for a hook lost with its worker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from jobs import asha, signals
from jobs.init_from import init_from_spec
from jobs.models import ACTIVE_STATUSES, EpochMetric, Job, Status, Sweep
from jobs.search_space import parse_space, trial_point
from jobs.services import lifecycle, projects
from jobs.services.projects import ORGANISE_FIELDS
from jobs.specs import SpecInvalid, job_spec_validate, spec_fields
from jobs.tpe import COMPLETE, FAILED, PRUNED, RUNNING, Observed, tpe_point
from tensorfleet_site.quotas import limits as quotas

logger = logging.getLogger(__name__)

EARLY_STOPPED = "early-stopped"
METRICS = ("val_accuracy", "val_loss", "train_loss")  # recorded per epoch; the Job row holds the last one
DEFAULT_MODE = {"val_accuracy": "max", "val_loss": "min", "train_loss": "min"}


class SweepNotActive(Exception):
    """The sweep has already ended."""


class TrialSpecInvalid(Exception):
    """A trial's spec did not pass the job validation."""


# Trial specs ------------------------------------------------------------------------------


def trial_data(
    *, base: dict, space: dict, search: str, seed: int, number: int, name: str = "", tpe: TpeContext | None = None
) -> dict:
    """The job spec (API input) of trial ``number`` (1-based): the base, the sampled values, a name.
    TPE proposes from the sweep's earlier trials (``tpe``); grid and random need none."""
    params = parse_space(space)
    if search == Sweep.Search.TPE:
        tpe = tpe or TpeContext(history=[], mode="max", max_trials=number)
        point = tpe_point(
            params, seed=seed, index=number - 1, history=tpe.history, mode=tpe.mode, max_trials=tpe.max_trials
        )
    else:
        point = trial_point(params, search=search, seed=seed, index=number - 1)
    prefix = (base.get("name") or name or "sweep")[:190]
    return {**base, **point, "name": f"{prefix} #{number}"}


def trial_validate(*, owner, data: dict) -> dict:
    """The validated job spec, or TrialSpecInvalid with the job validation's messages."""
    try:
        return job_spec_validate(owner=owner, data=data)
    except SpecInvalid as exc:
        raise TrialSpecInvalid(str(exc)) from None


def trial_spec(job: Job) -> dict:
    """A job's spec as the jobs API takes it: resubmit it to train the trial again on its own."""
    spec = {f: getattr(job, f) for f in spec_fields() if f not in ("dataset_size", *ORGANISE_FIELDS)}
    spec["project"] = str(job.project_id) if job.project_id else None
    spec["tags"] = sorted(job.tags.values_list("name", flat=True))
    spec["note"] = job.note
    spec["init_from"] = init_from_spec(job.init_from)  # the source as the spec names it, not the stored reference
    if job.dataset_size is not None:
        spec["dataset_size"] = job.dataset_size
    return spec


def trial_params(job: Job, sweep: Sweep) -> dict:
    """The values the sweep searched, as this trial got them."""
    return {field: getattr(job, field) for field in sorted(sweep.space)}


@dataclass(frozen=True)
class TpeContext:
    history: list[Observed]
    mode: str
    max_trials: int


def tpe_context(sweep: Sweep) -> TpeContext:
    """What TPE learns from: the sweep's trials so far, in trial order, with the values they
    tried, how they ended and their metric (per epoch for those ASHA stopped)."""
    trials = list(Job.objects.filter(sweep=sweep).order_by("trial_number"))
    stopped = [t.id for t in trials if t.status == Status.CANCELLED and t.error == EARLY_STOPPED]
    curves: dict = {}
    for job_id, epoch, value in EpochMetric.objects.filter(job_id__in=stopped).values_list(
        "job_id", "epoch", sweep.metric
    ):
        if value is not None:
            curves.setdefault(job_id, {})[epoch] = value
    history = []
    for trial in trials:
        values, metric = trial_params(trial, sweep), getattr(trial, sweep.metric)
        if trial.status in ACTIVE_STATUSES:
            history.append(Observed(values=values, state=RUNNING))
        elif trial.status == Status.SUCCEEDED:
            history.append(Observed(values=values, state=COMPLETE, metric=metric))
        elif trial.id in curves:
            history.append(Observed(values=values, state=PRUNED, curve=curves[trial.id]))
        else:
            history.append(Observed(values=values, state=FAILED))
    return TpeContext(history=history, mode=sweep.mode, max_trials=sweep.max_trials)


# Writes -------------------------------------------------------------------------------------


def sweep_create(*, owner, spec: dict) -> Sweep:
    """Store a sweep from a validated spec (jobs/sweep_serializers.py) and start its first
    ``max_concurrent`` trials; each is launched once the transaction commits. More
    trials than the owner's sweep_trials quota: QuotaExceeded (never fits: a 400)."""
    quotas.check(owner, "sweep_trials", used=0, asked=spec["trials"], field="trials")
    with transaction.atomic():
        sweep = Sweep.objects.create(
            owner=owner,
            name=spec.get("name", ""),
            base=spec["base"],
            space=spec["space"],
            search=spec["search"],
            max_trials=spec["trials"],
            max_concurrent=spec["max_concurrent"],
            metric=spec["metric"],
            mode=spec["mode"],
            early_stopping=spec.get("early_stopping"),
            seed=spec["seed"],
            project=spec.get("project"),
            note=spec.get("note", ""),
            status=Status.RUNNING,
            started_at=timezone.now(),
        )
        if spec.get("tags"):
            projects.tags_set(obj=sweep, names=spec["tags"])
        sweep_schedule(sweep_id=sweep.id)
    sweep.refresh_from_db()
    return sweep


def sweep_cancel(*, sweep: Sweep) -> Sweep:
    """Stop a sweep: no new trial starts and every queued or running trial is cancelled."""
    with transaction.atomic():
        updated = Sweep.objects.filter(id=sweep.id, status__in=ACTIVE_STATUSES).update(
            status=Status.CANCELLED, finished_at=timezone.now()
        )
        if not updated:
            sweep.refresh_from_db()
            raise SweepNotActive(f"sweep is already {sweep.status}")
        for job in Job.objects.filter(sweep_id=sweep.id, status__in=ACTIVE_STATUSES):
            try:
                lifecycle.job_cancel(job=job)
            except lifecycle.JobNotActive:
                pass  # it ended meanwhile
    sweep.refresh_from_db()
    return sweep


def sweep_schedule(*, sweep_id) -> list[Job]:
    """Start trials up to ``max_concurrent``, finish the sweep once every trial has ended,
    and bring the best trial up to date. Returns the trials it created."""
    created: list[Job] = []
    with transaction.atomic():
        sweep = Sweep.objects.select_for_update().select_related("owner").filter(id=sweep_id).first()
        if sweep is None:
            return created
        if sweep.status in ACTIVE_STATUSES:
            active = Job.objects.filter(sweep=sweep, status__in=ACTIVE_STATUSES).count()
            last = Job.objects.filter(sweep=sweep).aggregate(n=Max("trial_number"))["n"] or 0
            while active < sweep.max_concurrent and last < sweep.max_trials:
                last += 1
                try:
                    created.append(_trial_create(sweep, last))
                except TrialSpecInvalid as exc:
                    _sweep_fail(sweep, f"trial {last} is not a valid job: {exc}")
                    break
                except quotas.QuotaExceeded as exc:
                    if exc.never_fits:
                        _sweep_fail(sweep, f"trial {last} can never run: {exc}")
                    else:  # the owner's other jobs hold the room: the next end or reconcile pass retries
                        logger.info("sweep %s: trial %s waits: %s", sweep.id, last, exc)
                        last -= 1
                    break
                active += 1
            if sweep.status in ACTIVE_STATUSES and active == 0 and last >= sweep.max_trials:
                _sweep_finish(sweep)
        _best_refresh(sweep)
    return created


def _trial_create(sweep: Sweep, number: int) -> Job:
    data = trial_data(
        base=sweep.base,
        space=sweep.space,
        search=sweep.search,
        seed=sweep.seed,
        number=number,
        name=sweep.name,
        tpe=tpe_context(sweep) if sweep.search == Sweep.Search.TPE else None,
    )
    spec = trial_validate(owner=sweep.owner, data=data)
    # A trial goes where its sweep is, with its tags: set here, past the validation, which
    # would ask whether the owner may still write to the project (the sweep was let in).
    spec["project"], spec["tags"] = sweep.project, list(sweep.tags.values_list("name", flat=True))
    try:  # a trial is a trial from its row's creation, before it launches
        job = lifecycle.job_create(owner=sweep.owner, spec=spec, sweep=sweep, trial_number=number)
    except SpecInvalid as exc:  # its dataset could not be imported
        raise TrialSpecInvalid(str(exc)) from None
    logger.info("sweep %s: trial %s started as job %s", sweep.id, number, job.id)
    return job


def _sweep_finish(sweep: Sweep) -> None:
    trials = Job.objects.filter(sweep=sweep)
    scored = trials.exclude(status=Status.FAILED).filter(completed_epochs__gt=0).exists()
    sweep.status = Status.SUCCEEDED if scored else Status.FAILED
    sweep.error = "" if scored else "no trial recorded an epoch"
    sweep.finished_at = timezone.now()
    sweep.save(update_fields=["status", "error", "finished_at", "updated_at"])
    logger.info("sweep %s %s", sweep.id, sweep.status)
    transaction.on_commit(lambda: signals.sweep_finished.send(sender=Sweep, sweep_id=sweep.id), robust=True)


def _sweep_fail(sweep: Sweep, reason: str) -> None:
    sweep.status, sweep.error, sweep.finished_at = Status.FAILED, reason[:2000], timezone.now()
    sweep.save(update_fields=["status", "error", "finished_at", "updated_at"])
    logger.warning("sweep %s failed: %s", sweep.id, reason)
    for job in Job.objects.filter(sweep=sweep, status__in=ACTIVE_STATUSES):
        try:
            lifecycle.job_cancel(job=job)
        except lifecycle.JobNotActive:
            pass


def _best_refresh(sweep: Sweep) -> None:
    """The best trial: the best metric at the trial's last recorded epoch (failed trials aside)."""
    rows = (
        Job.objects.filter(sweep=sweep, completed_epochs__gt=0)
        .exclude(status=Status.FAILED)
        .values_list("id", "trial_number", sweep.metric)
    )
    candidates = [r for r in rows if r[2] is not None and asha.score(r[2], sweep.mode) != float("-inf")]
    if not candidates:
        return
    job_id, _, value = max(candidates, key=lambda r: (asha.score(r[2], sweep.mode), -r[1]))
    if sweep.best_trial_id != job_id or sweep.best_metric != value:
        sweep.best_trial_id, sweep.best_metric = job_id, value
        sweep.save(update_fields=["best_trial", "best_metric", "updated_at"])


def sweeps_reconcile() -> int:
    """For the reconciler: fill the free slots of running sweeps (and finish those with
    nothing left), in case a trial's end hook was lost with its worker. Returns trials started."""
    started = 0
    for sweep_id in Sweep.objects.filter(status__in=ACTIVE_STATUSES).values_list("id", flat=True):
        started += len(sweep_schedule(sweep_id=sweep_id))
    return started


# Hooks called from the training path ----------------------------------------------------------


def next_epoch_held(job: Job, epoch: int) -> bool:
    """Whether the job's next epoch waits for the early-stopping decision on ``epoch``.

    The aggregate step launches epoch e+1 before it evaluates epoch e; at an ASHA rung
    a trial must be judged first, or a stopped trial would already be training its next
    epoch (work thrown away, and a slot held past ``max_concurrent``). False outside a sweep.
    """
    if not job.sweep_id:
        return False
    stopping = Sweep.objects.filter(id=job.sweep_id).values_list("early_stopping", flat=True).first() or {}
    if stopping.get("type") != "asha":
        return False
    rungs = asha.rungs(
        grace_epochs=stopping["grace_epochs"], reduction_factor=stopping["reduction_factor"], max_epochs=job.epochs
    )
    return epoch in rungs


def on_epoch_recorded(job_id, epoch: int) -> bool:
    """After ``epoch`` of a job was recorded: whether the job should go on.

    For a sweep trial with ASHA, a trial that falls behind at a rung is cancelled with
    reason ``early-stopped`` (its slot goes to the next trial); the best trial so far is
    updated either way. Always True for a job outside a sweep. A bookkeeping error is
    logged and never stops the trial.
    """
    sweep_id = Job.objects.filter(id=job_id).values_list("sweep_id", flat=True).first()
    if not sweep_id:
        return True
    try:
        with transaction.atomic():
            sweep = Sweep.objects.select_for_update().get(id=sweep_id)
            job = Job.objects.get(id=job_id)
            if job.status not in ACTIVE_STATUSES:
                return False
            keep_going = True
            stopping = sweep.early_stopping or {}
            if stopping.get("type") == "asha" and sweep.status in ACTIVE_STATUSES:
                decision = _asha_decide(sweep, job, epoch, stopping)
                if decision.rung is not None:
                    logger.info("sweep %s trial %s epoch %s: %s", sweep.id, job.trial_number, epoch, decision)
                if not decision.keep_going:
                    lifecycle.job_cancel(job=job, reason=EARLY_STOPPED)  # its end hook starts the next trial
                    keep_going = False
            _best_refresh(sweep)
            return keep_going
    except Exception:  # noqa: BLE001 - the sweep's bookkeeping must not fail the trial's epoch
        logger.exception("sweep %s: deciding on job %s after epoch %s failed", sweep_id, job_id, epoch)
        return True


def _asha_decide(sweep: Sweep, job: Job, epoch: int, stopping: dict) -> asha.Decision:
    grace, factor = stopping["grace_epochs"], stopping["reduction_factor"]
    if epoch not in asha.rungs(grace_epochs=grace, reduction_factor=factor, max_epochs=job.epochs):
        return asha.Decision(keep_going=True)
    table: dict = {}
    for trial_id, value in EpochMetric.objects.filter(job__sweep=sweep, epoch=epoch).values_list(
        "job_id", sweep.metric
    ):
        table[trial_id] = {epoch: value}
    return asha.decide(
        trial=job.id,
        epoch=epoch,
        table=table,
        grace_epochs=grace,
        reduction_factor=factor,
        max_epochs=job.epochs,
        mode=sweep.mode,
    )


def on_job_ended(sender, *, job_id, **kwargs) -> None:
    """``jobs.signals.job_ended`` receiver (connected in ``JobsConfig.ready``)."""
    on_trial_finished(job_id)


def on_trial_finished(job_id) -> None:
    """After a job ended (succeeded, failed or cancelled): if it is a sweep trial, start the
    sweep's next trials, update its best trial, finish it when nothing is left. A no-op
    outside a sweep; an error is logged (the reconciler catches up)."""
    sweep_id = Job.objects.filter(id=job_id).values_list("sweep_id", flat=True).first()
    if not sweep_id:
        return
    try:
        sweep_schedule(sweep_id=sweep_id)
    except Exception:  # noqa: BLE001 - the trial's own end is recorded; the reconciler retries the rest
        logger.exception("sweep %s: scheduling after job %s ended failed", sweep_id, job_id)
