"""Writes to a job's tasks: their rows, claims, heartbeats and ends.

Every state change is a conditional update, so a duplicate Celery delivery or a late
finisher cannot double-count. Nothing here sends a message.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from jobs import signals
from jobs.models import ACTIVE_STATUSES, Job, Status, Task


def epoch_tasks_dispatch(*, job: Job, epoch: int, round: int = 1) -> dict[int, str]:
    """Make sure the round has its Task rows and give each unfinished one a fresh
    message id (a revoked id from a cancelled run must not be reused).
    Returns shard -> message id for the shards to send.

    New rows record the global state their round starts from (the job's latest, read
    under its row lock): a retried or resumed round starts from the same state whatever
    was recorded since.

    A few queries whatever the shard count (read, insert the new rows with their ids,
    update the ones there already), not one per shard: a round's fixed cost matters."""
    now, start = timezone.now(), job.round_state_key if (epoch, round) != (1, 1) else ""
    existing = {
        t.shard: t for t in Task.objects.filter(job=job, epoch=epoch, round=round).only("id", "shard", "status")
    }
    ids = {s: new_celery_id(job.id, epoch, s, round) for s in range(job.num_workers) if s not in existing}
    Task.objects.bulk_create(
        [
            Task(job=job, epoch=epoch, round=round, shard=s, celery_id=cid, dispatched_at=now, start_key=start)
            for s, cid in ids.items()
        ],
        ignore_conflicts=True,
    )
    again = [t for t in existing.values() if t.status != Status.SUCCEEDED]
    for task in again:
        task.celery_id, task.dispatched_at = new_celery_id(job.id, epoch, task.shard, round), now
        ids[task.shard] = task.celery_id
    if again:
        Task.objects.bulk_update(again, ["celery_id", "dispatched_at"])
    if round == 1:  # a later round's epoch is current already
        Job.objects.filter(id=job.id, current_epoch__lt=epoch).update(current_epoch=epoch)
    return ids


def new_celery_id(job_id, epoch: int, shard: int, round: int = 1) -> str:
    at = f"e{epoch}" if round == 1 else f"e{epoch}r{round}"
    return f"{job_id}-{at}-s{shard}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Claim:
    task: Task
    attempt: int
    already_done: bool = False


def task_claim(*, job_id, epoch: int, shard: int, worker: str, round: int = 1) -> Claim | None:
    """Take a shard of a round for this delivery. None: nothing to do (job ended, task
    ended or claimed by a newer delivery). ``already_done``: an earlier delivery finished it."""
    task = (
        Task.objects.select_related("job", "job__dataset_ref")
        .filter(job_id=job_id, epoch=epoch, round=round, shard=shard)
        .first()
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
                lambda: signals.shard_succeeded.send(
                    sender=Task, job_id=claim.task.job_id, samples=samples, duration_s=duration_s
                ),
                robust=True,  # a metrics error is logged, never fails a shard whose row is written
            )
    return bool(updated)


def task_heartbeat(*, claim: Claim) -> bool:
    """Record that this delivery is alive; False when it should stop (job no longer
    running, or a newer delivery of the shard has taken over)."""
    # One round trip: the job's status is a condition of the update (a subquery), not a second query.
    alive = Task.objects.filter(
        id=claim.task.id, attempts=claim.attempt, status=Status.RUNNING, job__status=Status.RUNNING
    ).update(heartbeat_at=timezone.now())
    return bool(alive)


def task_stop(*, claim: Claim, status: str, error: str = "") -> None:
    Task.objects.filter(id=claim.task.id, attempts=claim.attempt, status=Status.RUNNING).update(
        status=status, finished_at=timezone.now(), error=error[:2000]
    )


def task_fail(*, job_id, epoch: int, shard: int, error: str, error_class: str = "", round: int = 1) -> None:
    Task.objects.filter(job_id=job_id, epoch=epoch, round=round, shard=shard).exclude(status=Status.SUCCEEDED).update(
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


def task_retrying(*, job_id, epoch: int, shard: int, celery_id: str, error: str, round: int = 1) -> None:
    """A delivery hit a transient error and will be retried: the shard waits in the queue
    again (its retry message is held by the broker), rather than looking like a dead worker."""
    Task.objects.filter(
        job_id=job_id, epoch=epoch, round=round, shard=shard, status=Status.RUNNING, celery_id=celery_id
    ).update(
        status=Status.QUEUED, dispatched_at=timezone.now(), heartbeat_at=None, error=f"retrying after {error}"[:2000]
    )
