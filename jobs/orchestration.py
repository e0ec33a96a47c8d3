"""Sending a job's work to Celery: one chord per epoch (shards, then the aggregate).

A leaf: it only sends messages. The rows those messages point at are written by
``jobs.services`` before anything is sent. Only IDs travel through the broker, and
tasks are addressed by name (``jobs.task_names``), so the API process never imports
torch.
"""

from __future__ import annotations

import logging

from celery import chord, signature

from jobs.models import Job
from jobs.task_names import AGGREGATE_EPOCH, TRAIN_SHARD
from tensorfleet_site.celery import app

logger = logging.getLogger(__name__)


def epoch_send(job: Job, epoch: int, celery_ids: dict[int, str], *, priority: int = 0) -> None:
    """Send the epoch's chord; ``celery_ids`` gives every shard its message id. Shards go
    at ``priority`` (0 is taken first: jobs.services.launch.dispatch_priority); the
    aggregate, short and what the next epoch waits on, at 0."""
    header = [shard_signature(job, epoch, s, celery_ids[s], priority=priority) for s in range(job.num_workers)]
    chord(header, aggregate_signature(job, epoch)).apply_async()
    logger.info("job %s epoch %s: %s shards sent to queue %s", job.id, epoch, job.num_workers, job.queue)


def shard_send(job: Job, epoch: int, shard: int, celery_id: str, *, priority: int = 0) -> None:
    """Send one shard on its own (outside any chord); its completion triggers the aggregate."""
    shard_signature(job, epoch, shard, celery_id, priority=priority).apply_async()


def aggregate_send(job: Job, epoch: int) -> None:
    aggregate_signature(job, epoch).apply_async()


def shard_signature(job: Job, epoch: int, shard: int, celery_id: str, *, priority: int = 0):
    return signature(
        TRAIN_SHARD, args=(str(job.id), epoch, shard), queue=job.queue, task_id=celery_id, priority=priority
    )


def aggregate_signature(job: Job, epoch: int):
    return signature(AGGREGATE_EPOCH, args=(str(job.id), epoch), queue=job.queue, immutable=True, priority=0)


def revoke(celery_ids: list[str]) -> None:
    if celery_ids:
        app.control.revoke(celery_ids)
