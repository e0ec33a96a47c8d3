"""Celery tasks that train. Thin: each loads IDs from its message and calls a step.

Retries are narrow (connection errors with storage, broker or database, with
backoff and jitter); any other error fails the job with a readable reason.
"""

from __future__ import annotations

from celery import Task as CeleryTask

from jobs import services
from jobs.models import EpochMetric, Status, Task
from tensorfleet_site.celery import app
from workers import steps
from workers.errors import TRANSIENT_ERRORS, ShardsPending, classify, describe, is_broker_error


class TrainingTask(CeleryTask):
    autoretry_for = TRANSIENT_ERRORS
    # Full jitter on 2, 4, 8 ... 60 s: ten tries ride out several minutes of outage.
    retry_backoff = 2
    retry_backoff_max = 60
    retry_jitter = True
    max_retries = 10

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        if self.name == "workers.train_shard":
            job_id, epoch, shard = args[0], args[1], args[2]
            services.task_retrying(job_id=job_id, epoch=epoch, shard=shard, celery_id=task_id, error=describe(exc))

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        """Final failure (retries spent, or an error retrying cannot fix): fail the job with
        the reason, unless the database shows the work is done or the broker itself is
        down (then the reconciler sends the work again once it is back)."""
        job_id, epoch = args[0], args[1]
        error_class = classify(exc)
        if self.name == "workers.train_shard":
            shard = args[2]
            if Task.objects.filter(job_id=job_id, epoch=epoch, shard=shard, status=Status.SUCCEEDED).exists():
                return  # only the result's transport failed: the row holds the result
            if is_broker_error(exc):
                services.task_retrying(job_id=job_id, epoch=epoch, shard=shard, celery_id=task_id, error=describe(exc))
                return
            where = f"shard {shard} of epoch {epoch}"
            services.task_fail(job_id=job_id, epoch=epoch, shard=shard, error=describe(exc), error_class=error_class)
        else:
            if EpochMetric.objects.filter(job_id=job_id, epoch=epoch).exists() or is_broker_error(exc):
                return
            where = f"aggregating epoch {epoch}"
        services.job_fail(
            job_id=job_id,
            reason=f"{where} failed ({error_class}): {describe(exc)}",
            detail=str(einfo),
            error_class=error_class,
        )


@app.task(bind=True, base=TrainingTask, name="workers.train_shard")
def train_shard(self, job_id: str, epoch: int, shard: int) -> dict:
    return steps.shard_step(
        job_id=job_id,
        epoch=epoch,
        shard=shard,
        worker=self.request.hostname or "eager",
        in_chord=self.request.chord is not None,
    )


@app.task(bind=True, base=TrainingTask, name="workers.aggregate_epoch")
def aggregate_epoch(self, job_id: str, epoch: int) -> dict:
    try:
        return steps.aggregate_step(job_id=job_id, epoch=epoch)
    except ShardsPending as exc:
        # A chord can fire early when a shard message was delivered twice: wait for the rows.
        raise self.retry(exc=exc, countdown=2, max_retries=1800) from exc
