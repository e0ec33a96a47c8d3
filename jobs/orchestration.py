"""Turning a job into Celery chords: one chord per epoch, shards then aggregate.

Only IDs travel through the broker. Tasks are addressed by name, so the API
process never imports torch.
"""

from __future__ import annotations

import logging

from celery import chord, signature
from django.db import transaction

from jobs import services
from jobs.models import Job, Status
from tensorfleet_site.celery import app

logger = logging.getLogger(__name__)

TRAIN_SHARD = "workers.train_shard"
AGGREGATE_EPOCH = "workers.aggregate_epoch"


def job_launch(job_id) -> None:
    """Start epoch 1 of a newly committed job. If the broker cannot be reached the job
    stays queued, and the reconciler launches it once the broker is back."""
    try:
        epoch_launch(job_id, 1)
    except Exception:  # noqa: BLE001 - the API answered already; the reconciler retries
        logger.exception("could not enqueue job %s; the reconciler will try again", job_id)


def epoch_launch(job_id, epoch: int) -> None:
    """Create the epoch's Task rows and send its chord (shards in parallel, then aggregate).

    The job's row stays locked while its Task rows are made: a cancel committing meanwhile
    waits, then cancels them too, instead of leaving them queued for a job that has ended
    (no shard would ever claim them)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(id=job_id, status__in=(Status.QUEUED, Status.RUNNING)).first()
        if job is None:
            return
        ids = services.epoch_tasks_dispatch(job=job, epoch=epoch)
    # A shard that already succeeded is sent too (it answers at once) so the chord counts it.
    header = [
        shard_signature(job, epoch, s, ids.get(s) or services.new_celery_id(job.id, epoch, s))
        for s in range(job.num_workers)
    ]
    chord(header, aggregate_signature(job, epoch)).apply_async()
    logger.info("job %s epoch %s: %s shards sent to queue %s", job.id, epoch, job.num_workers, job.queue)


def shard_signature(job: Job, epoch: int, shard: int, celery_id: str):
    return signature(TRAIN_SHARD, args=(str(job.id), epoch, shard), queue=job.queue, task_id=celery_id)


def aggregate_signature(job: Job, epoch: int):
    return signature(AGGREGATE_EPOCH, args=(str(job.id), epoch), queue=job.queue, immutable=True)


def shard_redispatch(task, *, worker_lost: bool = False) -> bool:
    """Send a shard again on its own (outside any chord); its completion triggers the aggregate."""
    celery_id = services.new_celery_id(task.job_id, task.epoch, task.shard)
    if not services.task_requeue(task=task, celery_id=celery_id, worker_lost=worker_lost):
        return False
    shard_signature(task.job, task.epoch, task.shard, celery_id).apply_async()
    return True


def aggregate_dispatch(job: Job, epoch: int) -> None:
    aggregate_signature(job, epoch).apply_async()


def revoke(celery_ids: list[str]) -> None:
    if celery_ids:
        app.control.revoke(celery_ids)
