"""Sending a job's work to Celery: one chord per round of an epoch (shards, then the
aggregate); a job without ``sync_every_steps`` has one round per epoch.

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


def epoch_send(job: Job, epoch: int, celery_ids: dict[int, str], *, priority: int = 0, round: int = 1) -> None:
    """Send the round's chord; ``celery_ids`` gives every shard its message id. Shards go
    at ``priority`` (0 is taken first: jobs.services.launch.dispatch_priority); the
    aggregate, short and what the next round waits on, at 0."""
    header = [
        shard_signature(job, epoch, s, celery_ids[s], priority=priority, round=round) for s in range(job.num_workers)
    ]
    chord(header, aggregate_signature(job, epoch, round=round)).apply_async()
    logger.info(
        "job %s epoch %s round %s: %s shards sent to queue %s", job.id, epoch, round, job.num_workers, job.queue
    )


def shard_send(job: Job, epoch: int, shard: int, celery_id: str, *, priority: int = 0, round: int = 1) -> None:
    """Send one shard on its own (outside any chord); its completion triggers the aggregate."""
    shard_signature(job, epoch, shard, celery_id, priority=priority, round=round).apply_async()


def aggregate_send(job: Job, epoch: int, round: int = 1) -> None:
    aggregate_signature(job, epoch, round=round).apply_async()


def shard_signature(job: Job, epoch: int, shard: int, celery_id: str, *, priority: int = 0, round: int = 1):
    # The round goes last, so a message sent before rounds existed (three arguments) still reads as round 1.
    return signature(
        TRAIN_SHARD, args=(str(job.id), epoch, shard, round), queue=job.queue, task_id=celery_id, priority=priority
    )


def aggregate_signature(job: Job, epoch: int, *, round: int = 1):
    return signature(AGGREGATE_EPOCH, args=(str(job.id), epoch, round), queue=job.queue, immutable=True, priority=0)


def revoke(celery_ids: list[str]) -> None:
    if celery_ids:
        app.control.revoke(celery_ids)
