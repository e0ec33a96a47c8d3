"""Turning a job into Celery chords: one chord per epoch, shards then aggregate.

Only IDs travel through the broker. Tasks are addressed by name, so the API
process never imports torch.
"""

from __future__ import annotations

import logging
import uuid

from celery import chord, signature
from django.db import transaction

from jobs import services
from jobs.models import Job, Status
from tensorfleet_site.celery import app

logger = logging.getLogger(__name__)

TRAIN_SHARD = "workers.train_shard"
AGGREGATE_EPOCH = "workers.aggregate_epoch"


def job_launch(job_id) -> None:
    """Start epoch 1 of a newly committed job; a broker that cannot be reached fails it."""
    try:
        epoch_launch(job_id, 1)
    except Exception as exc:  # noqa: BLE001 - any enqueue error must reach the user, not vanish
        logger.exception("could not enqueue job %s", job_id)
        services.job_fail(job_id=job_id, reason=f"could not enqueue the job: {type(exc).__name__}: {exc}")


def epoch_launch(job_id, epoch: int) -> None:
    """Create the epoch's Task rows and send its chord (shards in parallel, then aggregate)."""
    job = Job.objects.filter(id=job_id).first()
    if job is None or job.status not in (Status.QUEUED, Status.RUNNING):
        return
    celery_ids = [f"{job.id}-e{epoch}-s{s}-{uuid.uuid4().hex[:8]}" for s in range(job.num_workers)]
    with transaction.atomic():
        services.epoch_tasks_create(job=job, epoch=epoch, celery_ids=celery_ids)
    # Rows that already existed (a re-launch) keep their ids: send under those.
    stored = dict(job.tasks.filter(epoch=epoch).values_list("shard", "celery_id"))
    header = [
        signature(TRAIN_SHARD, args=(str(job.id), epoch, s), queue=job.queue, task_id=stored.get(s) or celery_ids[s])
        for s in range(job.num_workers)
    ]
    body = signature(AGGREGATE_EPOCH, args=(str(job.id), epoch), queue=job.queue, immutable=True)
    chord(header, body).apply_async()
    logger.info("job %s epoch %s: %s shards sent to queue %s", job.id, epoch, job.num_workers, job.queue)


def revoke(celery_ids: list[str]) -> None:
    if celery_ids:
        app.control.revoke(celery_ids)
