"""Launching an epoch's round: its Task rows, then its chord. Used by create, resume, the
epoch-finished decision and the reconciler, so an epoch starts one way only."""

from __future__ import annotations

import logging

from django.db import transaction

from jobs import orchestration
from jobs.models import Job, Status
from jobs.services import claims

logger = logging.getLogger(__name__)


def job_launch(job_id) -> None:
    """Start epoch 1 of a newly committed job. If the broker cannot be reached the job
    stays queued, and the reconciler launches it once the broker is back."""
    try:
        epoch_launch(job_id, 1)
    except Exception:  # noqa: BLE001 - the API answered already; the reconciler retries
        logger.exception("could not enqueue job %s; the reconciler will try again", job_id)


def epoch_launch(job_id, epoch: int) -> None:
    """Start an epoch: its first round."""
    round_launch(job_id, epoch, 1)


def round_launch(job_id, epoch: int, round: int) -> None:
    """Create the round's Task rows and send its chord (shards in parallel, then aggregate).

    The job's row stays locked while its Task rows are made: a cancel committing meanwhile
    waits, then cancels them too, instead of leaving them queued for a job that has ended
    (no shard would ever claim them)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(id=job_id, status__in=(Status.QUEUED, Status.RUNNING)).first()
        if job is None:
            return
        ids = claims.epoch_tasks_dispatch(job=job, epoch=epoch, round=round)
    # A shard that already succeeded is sent too (it answers at once) so the chord counts it.
    celery_ids = {s: ids.get(s) or claims.new_celery_id(job.id, epoch, s, round) for s in range(job.num_workers)}
    orchestration.epoch_send(job, epoch, celery_ids, priority=dispatch_priority(job), round=round)


def launch_at(job_id, epoch: int, round: int) -> None:
    """Launch a round, through ``epoch_launch`` when it starts its epoch."""
    if round == 1:
        epoch_launch(job_id, epoch)
    else:
        round_launch(job_id, epoch, round)


def shard_redispatch(task, *, worker_lost: bool = False) -> bool:
    """Send a shard again on its own (outside any chord); its completion triggers the aggregate."""
    celery_id = claims.new_celery_id(task.job_id, task.epoch, task.shard, task.round)
    if not claims.task_requeue(task=task, celery_id=celery_id, worker_lost=worker_lost):
        return False
    orchestration.shard_send(
        task.job, task.epoch, task.shard, celery_id, priority=dispatch_priority(task.job), round=task.round
    )
    return True


# Fair dispatch between users on one queue: kombu's Redis transport keeps one list per
# priority step (0, 3, 6, 9) and workers take from step 0 first. A user's shards are
# sent at a step that grows with how many of that user's other jobs already wait on
# the queue, so one user's 256 queued jobs go to the back and another user's first job
# is taken next (docs/ARCHITECTURE.md, "Fair dispatch").
PRIORITY_BY_WAITING_JOBS = ((0, 0), (1, 3), (4, 6), (16, 9))  # (other jobs waiting, at least) -> step


def dispatch_priority(job: Job) -> int:
    waiting = (
        Job.objects.filter(owner_id=job.owner_id, queue=job.queue, tasks__status=Status.QUEUED)
        .exclude(id=job.id)
        .distinct()
        .count()
    )
    return max(step for least, step in PRIORITY_BY_WAITING_JOBS if waiting >= least)
