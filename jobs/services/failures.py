"""What a task's final failure means for its job: the failure rules, in one place.

A worker classifies the error (``workers.errors``) and reports it here; these rules
decide. The database is the source of truth: a failure whose work the rows show as
done changes nothing, and with the broker down nothing is failed (the reconciler sends
the work again once it is back).
"""

from __future__ import annotations

from jobs.models import EpochMetric, Status, Task
from jobs.services import claims, lifecycle


def shard_failed(
    *, job_id, epoch: int, shard: int, celery_id: str, error: str, error_class: str, detail: str, broker_down: bool
) -> None:
    """A shard's delivery failed for good (retries spent, or an error retrying cannot fix)."""
    if Task.objects.filter(job_id=job_id, epoch=epoch, shard=shard, status=Status.SUCCEEDED).exists():
        return  # only the result's transport failed: the row holds the result
    if broker_down:
        claims.task_retrying(job_id=job_id, epoch=epoch, shard=shard, celery_id=celery_id, error=error)
        return
    claims.task_fail(job_id=job_id, epoch=epoch, shard=shard, error=error, error_class=error_class)
    lifecycle.job_fail(
        job_id=job_id,
        reason=f"shard {shard} of epoch {epoch} failed ({error_class}): {error}",
        detail=detail,
        error_class=error_class,
    )


def aggregate_failed(*, job_id, epoch: int, error: str, error_class: str, detail: str, broker_down: bool) -> None:
    """An epoch's aggregate failed for good."""
    if broker_down or EpochMetric.objects.filter(job_id=job_id, epoch=epoch).exists():
        return
    lifecycle.job_fail(
        job_id=job_id,
        reason=f"aggregating epoch {epoch} failed ({error_class}): {error}",
        detail=detail,
        error_class=error_class,
    )
