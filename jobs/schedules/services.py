"""Writes of the schedules: the schedule and its beat entry, a run started from beat (or
by hand), and a finished run judged against its promotion rule.

Locks: a schedule's row is locked while a run is numbered and started (two beats, or a
beat and a manual run, at once make two numbered runs, never two jobs for one number); a
run's row while it is judged (a redelivered judge finds it judged); the registered
model's row while the run's metric is compared with the version behind the alias and
the alias moved, so a manual move cannot slip in between.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from jobs.models import ACTIVE_STATUSES, Job, Status
from jobs.registry import selectors as registry_selectors
from jobs.registry import services as registry
from jobs.registry.models import RegisteredModel
from jobs.schedules import signals
from jobs.schedules.cron import cron_fields
from jobs.schedules.models import Schedule, ScheduleRun
from jobs.services import lifecycle
from jobs.specs import DatasetImport, SpecInvalid, job_spec_validate
from tensorfleet_site.quotas.limits import QuotaExceeded

logger = logging.getLogger(__name__)

RUN_TASK = "schedules.run"  # the task beat sends (jobs/schedules/tasks.py)
LOWER_IS_BETTER = {Schedule.Metric.VAL_LOSS}


def spec_validate(*, owner, spec: dict) -> dict:
    """The job validation's answer for a schedule's spec (SpecInvalid), and a dataset that
    is a built-in or one of the owner's by name: a path or URI would be imported anew each run."""
    validated = job_spec_validate(owner=owner, data=spec)
    if isinstance(validated["dataset"], DatasetImport):
        raise SpecInvalid({"dataset": ["A schedule trains on a built-in or one of your datasets by name, not a path."]})
    return validated


# Schedules and their beat entries -----------------------------------------------------------


def schedule_create(*, owner, **fields) -> Schedule:
    """The caller has checked the fields (the API's serializer, ``spec_validate``)."""
    with transaction.atomic():
        schedule = Schedule.objects.create(owner=owner, **fields)
        schedule_sync(schedule)
    return schedule


def schedule_update(*, schedule: Schedule, **fields) -> Schedule:
    with transaction.atomic():
        for name, value in fields.items():
            setattr(schedule, name, value)
        schedule.save()
        schedule_sync(schedule)
    return schedule


def schedule_sync(schedule: Schedule) -> PeriodicTask:
    """Write the schedule's PeriodicTask (through ``save``: django-celery-beat's signal
    tells a running beat to reload its entries)."""
    crontab, _ = CrontabSchedule.objects.get_or_create(**cron_fields(schedule.cron), timezone="UTC")
    task = schedule.periodic_task or PeriodicTask(name=f"schedule {schedule.id}")
    task.task = RUN_TASK
    task.crontab, task.interval = crontab, None
    task.args = json.dumps([str(schedule.id)])
    task.kwargs = "{}"
    task.queue = settings.TENSORFLEET_CONTROL_QUEUE
    task.enabled = schedule.enabled
    task.description = f"{schedule.owner.get_username()}'s schedule {schedule.name!r}"[:200]
    task.save()
    if schedule.periodic_task_id != task.id:
        schedule.periodic_task = task
        schedule.save(update_fields=["periodic_task"])
    return task


def schedule_rows_deleted(sender, *, instance: Schedule, **kwargs) -> None:
    """``post_delete`` receiver for Schedule: its beat entry goes with it."""
    if instance.periodic_task_id:
        PeriodicTask.objects.filter(id=instance.periodic_task_id).delete()


# Runs ------------------------------------------------------------------------------------


def _finished(run: ScheduleRun) -> ScheduleRun:
    run_id = run.id
    transaction.on_commit(lambda: signals.run_finished.send(sender=ScheduleRun, run_id=run_id), robust=True)
    return run


def _run_start(schedule: Schedule, number: int, trigger: str) -> ScheduleRun:
    base = {"schedule": schedule, "number": number, "trigger": trigger}
    data = {**schedule.spec, "name": f"{(schedule.spec.get('name') or schedule.name)[:180]} #{number}"}
    try:
        job = lifecycle.job_create(owner=schedule.owner, spec=spec_validate(owner=schedule.owner, spec=data))
    except (SpecInvalid, QuotaExceeded) as exc:
        logger.warning("schedule %s run %s refused: %s", schedule.id, number, exc)
        refused = ScheduleRun.Status.REFUSED
        return _finished(
            ScheduleRun.objects.create(**base, status=refused, detail=str(exc), finished_at=timezone.now())
        )
    logger.info("schedule %s run %s: job %s", schedule.id, number, job.id)
    return ScheduleRun.objects.create(**base, job=job, job_uuid=job.id, dataset_version=job.dataset_version)


def schedule_run(*, schedule_id, trigger: str = "beat") -> ScheduleRun | None:
    """Start run n+1 as an ordinary job (its dataset's newest version, as the spec names
    it by name). Skipped while the previous run is going; refused, with the reason, when
    the spec no longer passes (a dataset deleted) or a quota is full. None when the
    schedule is gone, or disabled and this is beat."""
    with transaction.atomic():
        schedule = Schedule.objects.select_for_update().select_related("owner").filter(id=schedule_id).first()
        if schedule is None or (trigger == "beat" and not schedule.enabled):
            return None
        number = (schedule.runs.aggregate(n=Max("number"))["n"] or 0) + 1
        schedule.last_run_at = timezone.now()
        schedule.save(update_fields=["last_run_at"])
        going = schedule.runs.filter(status=ScheduleRun.Status.RUNNING).first()
        if going is None:
            return _run_start(schedule, number, trigger)
        detail = f"run {going.number} (job {going.job_uuid}) is still going"
        skipped = ScheduleRun.objects.create(
            schedule=schedule,
            number=number,
            trigger=trigger,
            status=ScheduleRun.Status.SKIPPED,
            detail=detail,
            finished_at=timezone.now(),
        )
        return _finished(skipped)


def run_for_job(job_id) -> ScheduleRun | None:
    return ScheduleRun.objects.filter(job_id=job_id, status=ScheduleRun.Status.RUNNING).first()


def _metric_of(job: Job, metric: str) -> float | None:
    """The metric at the job's best checkpoint: the one a promotion registers."""
    best = registry_selectors.checkpoint_pick(job, "best")
    return registry_selectors.epoch_metrics(job, best.epoch).get(metric) if best else None


def _beats(value: float, current: float, metric: str) -> bool:
    return value < current if metric in LOWER_IS_BETTER else value > current


def _promote(run: ScheduleRun, job: Job) -> None:
    """Register the run's best checkpoint and move the alias to it when its metric beats
    the version behind the alias (or the alias is empty); ``run.detail`` says which."""
    schedule, metric = run.schedule, run.schedule.metric
    model = registry.model_get_or_create(owner=schedule.owner, name=schedule.promote_model)
    model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
    alias = registry_selectors.alias_of(model, schedule.promote_alias)
    run.previous_version = alias.version.version if alias else None
    run.compared_to = alias.version.metrics.get(metric) if alias else None
    where = f"{model.name}@{schedule.promote_alias}"
    if run.metric_value is None:
        run.detail = f"not promoted: the run has no {metric}"
    elif run.compared_to is not None and not _beats(run.metric_value, run.compared_to, metric):
        run.detail = (
            f"not promoted: {metric} {run.metric_value:.4f} does not beat {run.compared_to:.4f} "
            f"(version {run.previous_version}, {where})"
        )
    else:
        version = registry.version_create(
            model=model, job=job, source="best", description=f"schedule {schedule.name!r} run {run.number}"
        )
        registry.alias_set(model=model, name=schedule.promote_alias, version=version.version)
        run.promoted, run.version = True, version.version
        run.detail = f"promoted: {where} -> version {version.version} ({metric} {run.metric_value:.4f})"


def run_judge(*, run_id) -> ScheduleRun | None:
    """Record how a run's job ended and apply the promotion rule to a success; a failed or
    cancelled run leaves the alias where it was. None when there is nothing to judge."""
    with transaction.atomic():
        run = (
            ScheduleRun.objects.select_for_update(of=("self",))
            .select_related("schedule__owner", "job")
            .filter(id=run_id, status=ScheduleRun.Status.RUNNING)
            .first()
        )
        if run is None or (run.job is not None and run.job.status in ACTIVE_STATUSES):
            return None
        if run.job is None:
            run.status, run.detail = ScheduleRun.Status.FAILED, "the job was deleted"
        else:
            run.status = run.job.status
            run.metric_value = _metric_of(run.job, run.schedule.metric)
            if run.job.status == Status.SUCCEEDED and run.schedule.promotes:
                try:
                    _promote(run, run.job)
                except registry.RegistryError as exc:
                    run.detail = f"not promoted: {exc}"
        run.finished_at = timezone.now()
        run.save()
    logger.info("schedule %s run %s %s: %s", run.schedule_id, run.number, run.status, run.detail)
    return _finished(run)
