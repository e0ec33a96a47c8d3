"""From the platform's signals to webhook events: which event, and the data it carries.

* ``jobs.signals.job_ended`` -> ``job.succeeded``, ``job.failed`` or ``job.cancelled``
  (the job's status read when the signal comes);
* ``jobs.signals.sweep_finished`` -> ``sweep.finished``;
* ``jobs.registry.signals`` -> ``model.version_created``, ``model.alias_moved``;
* ``jobs.schedules.signals.run_finished`` -> ``schedule.run_finished``.
"""

from __future__ import annotations

from jobs import signals as job_signals
from jobs.models import Job, Status, Sweep
from jobs.registry import signals as registry_signals
from jobs.registry.models import ModelAlias, ModelVersion
from jobs.schedules import signals as schedule_signals
from jobs.schedules.models import ScheduleRun
from jobs.webhooks import services, tasks

JOB_EVENTS = {Status.SUCCEEDED: "job.succeeded", Status.FAILED: "job.failed", Status.CANCELLED: "job.cancelled"}


def emit(*, owner_id, event: str, data: dict) -> int:
    """Deliver ``event`` to the owner's endpoints that want it, once the caller commits;
    returns how many deliveries were made."""
    made = services.event_emit(owner_id=owner_id, event=event, data=data)
    tasks.deliveries_send(made)
    return len(made)


def job_data(job: Job) -> dict:
    return {
        "job": {
            "id": str(job.id),
            "name": job.name,
            "status": job.status,
            "model_type": job.model_type,
            "dataset": job.dataset,
            "dataset_sha256": job.dataset_sha256,
            "dataset_version": job.dataset_version,
            "epochs": job.epochs,
            "completed_epochs": job.completed_epochs,
            "val_accuracy": job.val_accuracy,
            "best_val_accuracy": job.best_val_accuracy,
            "error": job.error,
            "error_class": job.error_class,
            "sweep": str(job.sweep_id) if job.sweep_id else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        }
    }


def on_job_ended(sender, *, job_id, **kwargs) -> None:
    job = Job.objects.filter(id=job_id).first()
    event = JOB_EVENTS.get(job.status) if job else None  # resumed meanwhile: no event
    if job is not None and event is not None:
        emit(owner_id=job.owner_id, event=event, data=job_data(job))


def on_sweep_finished(sender, *, sweep_id, **kwargs) -> None:
    sweep = Sweep.objects.filter(id=sweep_id).first()
    if sweep is None:
        return
    data = {
        "sweep": {
            "id": str(sweep.id),
            "name": sweep.name,
            "status": sweep.status,
            "metric": sweep.metric,
            "mode": sweep.mode,
            "best_trial": str(sweep.best_trial_id) if sweep.best_trial_id else None,
            "best_metric": sweep.best_metric,
            "error": sweep.error,
        }
    }
    emit(owner_id=sweep.owner_id, event="sweep.finished", data=data)


def version_data(version: ModelVersion) -> dict:
    return {
        "version": version.version,
        "sha256": version.checkpoint_sha256,
        "job": str(version.job_uuid),
        "checkpoint": {"source": version.source, "epoch": version.checkpoint_epoch},
        "dataset": {"name": version.dataset_name, "sha256": version.dataset_sha256, "version": version.dataset_version},
        "metrics": version.metrics,
    }


def on_version_created(sender, *, version_id, **kwargs) -> None:
    version = ModelVersion.objects.select_related("model").filter(id=version_id).first()
    if version is not None:
        data = {"model": version.model.name, "version": version_data(version)}
        emit(owner_id=version.model.owner_id, event="model.version_created", data=data)


def on_alias_moved(sender, *, alias_id, previous_version, version, **kwargs) -> None:
    alias = ModelAlias.objects.select_related("model").filter(id=alias_id).first()
    if alias is not None:
        data = {
            "model": alias.model.name,
            "alias": alias.name,
            "version": version,
            "previous_version": previous_version,
        }
        emit(owner_id=alias.model.owner_id, event="model.alias_moved", data=data)


def on_run_finished(sender, *, run_id, **kwargs) -> None:
    run = ScheduleRun.objects.select_related("schedule").filter(id=run_id).first()
    if run is None:
        return
    schedule = run.schedule
    data = {
        "schedule": {"id": str(schedule.id), "name": schedule.name, "cron": schedule.cron},
        "run": {
            "number": run.number,
            "status": run.status,
            "job": str(run.job_uuid) if run.job_uuid else None,
            "dataset_version": run.dataset_version,
            "metric": schedule.metric,
            "metric_value": run.metric_value,
            "compared_to": run.compared_to,
            "promoted": run.promoted,
            "model": schedule.promote_model or None,
            "alias": schedule.promote_alias or None,
            "version": run.version,
            "previous_version": run.previous_version,
            "detail": run.detail,
        },
    }
    emit(owner_id=schedule.owner_id, event="schedule.run_finished", data=data)


def connect() -> None:
    job_signals.job_ended.connect(on_job_ended, dispatch_uid="webhooks.on_job_ended")
    job_signals.sweep_finished.connect(on_sweep_finished, dispatch_uid="webhooks.on_sweep_finished")
    registry_signals.version_created.connect(on_version_created, dispatch_uid="webhooks.on_version_created")
    registry_signals.alias_moved.connect(on_alias_moved, dispatch_uid="webhooks.on_alias_moved")
    schedule_signals.run_finished.connect(on_run_finished, dispatch_uid="webhooks.on_run_finished")
