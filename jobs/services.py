"""Writes to jobs and tasks. Every state change is a conditional update, so a
duplicate Celery delivery or a late finisher cannot double-count."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from jobs.models import ACTIVE_STATUSES, EpochMetric, Job, Status, Task
from monitoring_app import metrics
from workers.catalog import BUILTIN_DATASETS
from workers.devices import default_threads

logger = logging.getLogger(__name__)


class JobNotActive(Exception):
    """The job has already finished (succeeded, failed or been cancelled)."""


class JobNotFinished(Exception):
    """The job is still queued or running."""


class JobNotResumable(Exception):
    """Only cancelled or failed jobs with epochs left can resume."""


def job_create(*, owner, spec: dict) -> Job:
    """Store a job from a validated spec; epoch 1 is launched once the row is committed."""
    from jobs import orchestration

    dataset = spec["dataset"]
    if isinstance(dataset, str):  # a built-in
        builtin = BUILTIN_DATASETS[dataset]
        data = {"dataset": dataset, "input_shape": list(builtin.input_shape), "num_classes": builtin.num_classes}
    else:  # an uploaded storage_app.Dataset
        data = {
            "dataset": dataset.name,
            "dataset_ref": dataset,
            "dataset_sha256": dataset.sha256,
            "input_shape": list(dataset.input_shape),
            "num_classes": dataset.num_classes,
        }
    shards = spec["num_workers"]
    job = Job.objects.create(
        owner=owner,
        name=spec.get("name", ""),
        model_type=spec["model_type"],
        **data,
        dataset_size=spec.get("dataset_size"),
        num_workers=shards,
        epochs=spec["epochs"],
        batch_size=spec["batch_size"],
        learning_rate=spec["learning_rate"],
        optimizer=spec["optimizer"],
        momentum=spec.get("momentum", 0.0),
        seed=spec["seed"],
        queue=spec["queue"],
        threads=spec.get("threads") or settings.TENSORFLEET_THREADS_PER_SHARD or default_threads(shards),
        keep_checkpoints=spec.get("keep_checkpoints", settings.TENSORFLEET_KEEP_CHECKPOINTS),
        total_tasks=shards * spec["epochs"],
    )
    transaction.on_commit(lambda: orchestration.job_launch(job.id))
    return job


def job_cancel(*, job: Job, reason: str = "") -> Job:
    """Stop a queued or running job: no new epoch starts, queued shards are revoked,
    and running shards stop at their next cancellation check. ``reason`` goes to
    ``error`` (a sweep's early stop says "early-stopped"); checkpoints stay."""
    from jobs import orchestration, sweeps

    with transaction.atomic():
        updated = Job.objects.filter(id=job.id, status__in=ACTIVE_STATUSES).update(
            status=Status.CANCELLED, finished_at=timezone.now(), error=reason
        )
        if not updated:
            job.refresh_from_db()
            raise JobNotActive(f"job is already {job.status}")
        queued = list(Task.objects.filter(job=job, status=Status.QUEUED).values_list("celery_id", flat=True))
        Task.objects.filter(job=job, status=Status.QUEUED).update(status=Status.CANCELLED)
        transaction.on_commit(lambda: orchestration.revoke([cid for cid in queued if cid]))
    job.refresh_from_db()
    if job.sweep_id:  # a sweep trial ended: its sweep starts the next ones
        sweeps.on_trial_finished(job.id)
    return job


def job_delete(*, job: Job) -> None:
    """Delete a finished job with its rows and every object it wrote to storage."""
    from storage_app.services import job_objects_delete

    if job.status in ACTIVE_STATUSES:
        raise JobNotFinished(f"job is {job.status}; cancel it first")
    job_id = job.id
    with transaction.atomic():
        job.delete()
        transaction.on_commit(lambda: job_objects_delete(job_id))


def job_fail(*, job_id, reason: str, detail: str = "", error_class: str = "") -> bool:
    """Mark an active job failed with a readable reason; False when it had already ended."""
    updated = Job.objects.filter(id=job_id, status__in=ACTIVE_STATUSES).update(
        status=Status.FAILED,
        finished_at=timezone.now(),
        error=reason[:2000],
        error_class=error_class,
        error_detail=detail[:20000],
    )
    if updated:
        logger.warning("job %s failed: %s", job_id, reason)
        from jobs import sweeps

        sweeps.on_trial_finished(job_id)  # a no-op unless the job is a sweep trial
    return bool(updated)


def epoch_tasks_dispatch(*, job: Job, epoch: int) -> dict[int, str]:
    """Make sure the epoch has its Task rows and give each unfinished one a fresh
    message id (a revoked id from a cancelled run must not be reused).
    Returns shard -> message id for the shards to send."""
    now = timezone.now()
    Task.objects.bulk_create(
        [Task(job=job, epoch=epoch, shard=s) for s in range(job.num_workers)], ignore_conflicts=True
    )
    ids = {}
    for task in Task.objects.filter(job=job, epoch=epoch).exclude(status=Status.SUCCEEDED):
        ids[task.shard] = new_celery_id(job.id, epoch, task.shard)
        Task.objects.filter(id=task.id).update(celery_id=ids[task.shard], dispatched_at=now)
    Job.objects.filter(id=job.id, current_epoch__lt=epoch).update(current_epoch=epoch)
    return ids


def new_celery_id(job_id, epoch: int, shard: int) -> str:
    return f"{job_id}-e{epoch}-s{shard}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Claim:
    task: Task
    attempt: int
    already_done: bool = False


def task_claim(*, job_id, epoch: int, shard: int, worker: str) -> Claim | None:
    """Take a shard for this delivery. None: nothing to do (job ended, task ended or
    claimed by a newer delivery). ``already_done``: an earlier delivery finished it."""
    task = (
        Task.objects.select_related("job", "job__dataset_ref").filter(job_id=job_id, epoch=epoch, shard=shard).first()
    )
    if task is None or task.job.status not in ACTIVE_STATUSES:
        return None
    if task.status == Status.SUCCEEDED:
        return Claim(task=task, attempt=task.attempts, already_done=True)
    if task.status not in ACTIVE_STATUSES:
        return None
    attempt = task.attempts + 1
    now = timezone.now()
    # Conditional on the attempt count we read: of two concurrent deliveries one wins.
    won = Task.objects.filter(id=task.id, attempts=task.attempts, status__in=ACTIVE_STATUSES).update(
        status=Status.RUNNING, attempts=attempt, worker=worker[:200], started_at=now, heartbeat_at=now, error=""
    )
    if not won:
        return None
    if task.job.status == Status.QUEUED:
        Job.objects.filter(id=job_id, status=Status.QUEUED).update(status=Status.RUNNING, started_at=now)
        task.job.status = Status.RUNNING
    task.status, task.attempts, task.worker, task.started_at, task.heartbeat_at = (
        Status.RUNNING, attempt, worker[:200], now, now,
    )  # fmt: skip
    return Claim(task=task, attempt=attempt)


def task_complete(*, claim: Claim, output_key: str, samples: int, train_loss: float, duration_s: float) -> bool:
    """Record a shard's result if this delivery still owns the task; count it once."""
    with transaction.atomic():
        updated = Task.objects.filter(id=claim.task.id, attempts=claim.attempt, status=Status.RUNNING).update(
            status=Status.SUCCEEDED,
            finished_at=timezone.now(),
            duration_s=duration_s,
            samples=samples,
            train_loss=train_loss,
            output_key=output_key,
        )
        if updated:
            Job.objects.filter(id=claim.task.job_id).update(completed_tasks=F("completed_tasks") + 1)
            transaction.on_commit(
                lambda: metrics.shard_succeeded(job_id=claim.task.job_id, samples=samples, duration_s=duration_s),
                robust=True,  # a metrics error is logged, never fails a shard whose row is written
            )
    return bool(updated)


def task_heartbeat(*, claim: Claim) -> bool:
    """Record that this delivery is alive; False when it should stop (job no longer
    running, or a newer delivery of the shard has taken over)."""
    alive = Task.objects.filter(id=claim.task.id, attempts=claim.attempt, status=Status.RUNNING).update(
        heartbeat_at=timezone.now()
    )
    return bool(alive) and Job.objects.filter(id=claim.task.job_id, status=Status.RUNNING).exists()


def task_stop(*, claim: Claim, status: str, error: str = "") -> None:
    Task.objects.filter(id=claim.task.id, attempts=claim.attempt, status=Status.RUNNING).update(
        status=status, finished_at=timezone.now(), error=error[:2000]
    )


def task_fail(*, job_id, epoch: int, shard: int, error: str, error_class: str = "") -> None:
    Task.objects.filter(job_id=job_id, epoch=epoch, shard=shard).exclude(status=Status.SUCCEEDED).update(
        status=Status.FAILED, finished_at=timezone.now(), error=error[:2000], error_class=error_class
    )


def task_requeue(*, task: Task, celery_id: str, worker_lost: bool = False) -> bool:
    """Hand a shard whose delivery was lost to a new message (conditional on its attempt count)."""
    return bool(
        Task.objects.filter(id=task.id, attempts=task.attempts, status__in=ACTIVE_STATUSES).update(
            status=Status.QUEUED,
            celery_id=celery_id,
            dispatched_at=timezone.now(),
            heartbeat_at=None,
            lost=F("lost") + (1 if worker_lost else 0),
        )
    )


def task_retrying(*, job_id, epoch: int, shard: int, celery_id: str, error: str) -> None:
    """A delivery hit a transient error and will be retried: the shard waits in the queue
    again (its retry message is held by the broker), rather than looking like a dead worker."""
    Task.objects.filter(job_id=job_id, epoch=epoch, shard=shard, status=Status.RUNNING, celery_id=celery_id).update(
        status=Status.QUEUED, dispatched_at=timezone.now(), heartbeat_at=None, error=f"retrying after {error}"[:2000]
    )


def job_resume(*, job: Job) -> int:
    """Continue a cancelled or failed job from its last completed epoch's checkpoint.

    Returns the epoch it restarts at. Shards of later epochs start over (their
    work is deterministic, so the result is the same as an uninterrupted run).
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().get(id=job.id)
        if job.status not in (Status.CANCELLED, Status.FAILED):
            raise JobNotResumable(f"job is {job.status}; only cancelled or failed jobs resume")
        restart = job.completed_epochs + 1
        if restart > job.epochs:
            raise JobNotResumable("every epoch has completed; nothing to resume")
        job.tasks.filter(epoch__gte=restart).update(status=Status.QUEUED, error="", error_class="", heartbeat_at=None)
        job.status = Status.RUNNING
        job.finished_at = None
        job.error = job.error_class = job.error_detail = ""
        job.completed_tasks = job.tasks.filter(status=Status.SUCCEEDED).count()
        job.save(
            update_fields=[
                "status",
                "finished_at",
                "error",
                "error_class",
                "error_detail",
                "completed_tasks",
                "updated_at",
            ]
        )
    return restart


def epoch_record(
    *, job_id, epoch: int, train_loss: float, val_loss: float, val_accuracy: float, samples: int, duration_s: float
) -> bool:
    """Record an epoch's metrics once; the job succeeds when its every epoch is recorded.

    Epochs are launched before the previous one is evaluated, so records can arrive
    out of order: the job's latest metrics follow the highest epoch recorded.
    Returns False when this epoch was already recorded (a duplicate delivery).
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().get(id=job_id)
        if EpochMetric.objects.filter(job=job, epoch=epoch).exists():
            return False
        EpochMetric.objects.create(
            job=job,
            epoch=epoch,
            train_loss=train_loss,
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            samples=samples,
            samples_per_s=samples / duration_s if duration_s > 0 else 0.0,
            duration_s=duration_s,
        )
        if epoch >= job.completed_epochs:
            job.train_loss, job.val_loss, job.val_accuracy = train_loss, val_loss, val_accuracy
        job.completed_epochs = max(job.completed_epochs, epoch)
        if job.best_val_accuracy is None or val_accuracy > job.best_val_accuracy:
            job.best_val_accuracy = val_accuracy
        if job.status == Status.RUNNING and EpochMetric.objects.filter(job=job).count() >= job.epochs:
            job.status = Status.SUCCEEDED
            job.finished_at = timezone.now()
        job.save(
            update_fields=[
                "completed_epochs",
                "train_loss",
                "val_loss",
                "val_accuracy",
                "best_val_accuracy",
                "status",
                "finished_at",
                "updated_at",
            ]
        )
    if job.sweep_id and job.status == Status.SUCCEEDED:  # a sweep trial ended: its sweep goes on
        from jobs import sweeps

        sweeps.on_trial_finished(job.id)
    return True
