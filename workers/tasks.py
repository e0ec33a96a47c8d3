"""Celery tasks that train. Thin: each loads IDs from its message and calls a step.

Retries are narrow (connection errors with storage, broker or database, with
backoff and jitter). A final failure is classified here and reported to
``jobs.services.failures``, whose rules decide what it means for the job.
"""

from __future__ import annotations

from celery import Task as CeleryTask

from jobs.services import claims, failures
from jobs.task_names import AGGREGATE_EPOCH, TRAIN_SHARD
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


def _round(args) -> int:
    """The round a message names (it goes last; a message from before rounds names none: round 1)."""
    return int(args[3]) if len(args) > 3 else 1


class ShardTask(TrainingTask):
    def on_retry(self, exc, task_id, args, kwargs, einfo):
        job_id, epoch, shard = args[0], args[1], args[2]
        claims.task_retrying(
            job_id=job_id, epoch=epoch, shard=shard, round=_round(args), celery_id=task_id, error=describe(exc)
        )

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        failures.shard_failed(
            job_id=args[0],
            epoch=args[1],
            shard=args[2],
            round=_round(args),
            celery_id=task_id,
            error=describe(exc),
            error_class=classify(exc),
            detail=str(einfo),
            broker_down=is_broker_error(exc),
        )


class AggregateTask(TrainingTask):
    def on_failure(self, exc, task_id, args, kwargs, einfo):
        failures.aggregate_failed(
            job_id=args[0],
            epoch=args[1],
            round=int(args[2]) if len(args) > 2 else 1,
            error=describe(exc),
            error_class=classify(exc),
            detail=str(einfo),
            broker_down=is_broker_error(exc),
        )


@app.task(bind=True, base=ShardTask, name=TRAIN_SHARD)
def train_shard(self, job_id: str, epoch: int, shard: int, round: int = 1) -> dict:
    return steps.shard_step(
        job_id=job_id,
        epoch=epoch,
        shard=shard,
        round=round,
        worker=self.request.hostname or "eager",
        in_chord=self.request.chord is not None,
    )


@app.task(bind=True, base=AggregateTask, name=AGGREGATE_EPOCH)
def aggregate_epoch(self, job_id: str, epoch: int, round: int = 1) -> dict:
    try:
        return steps.aggregate_step(job_id=job_id, epoch=epoch, round=round)
    except ShardsPending as exc:
        # A chord can fire early when a shard message was delivered twice: wait for the rows.
        raise self.retry(exc=exc, countdown=2, max_retries=1800) from exc
