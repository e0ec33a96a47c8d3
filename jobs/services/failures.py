"""What a task's final failure means for its job: the failure rules, in one place.

A worker classifies the error (``workers.errors``, names in ``jobs.failure_classes``)
and reports it here; these rules decide. The database is the source of truth: a failure
whose work the rows show as done changes nothing, and with the broker down nothing is
failed (the reconciler sends the work again once it is back).
"""

from __future__ import annotations

from jobs import selectors
from jobs.failure_classes import DIVERGED
from jobs.models import Job, Status, Task
from jobs.services import claims, lifecycle
from storage_app.models import Checkpoint


def shard_failed(
    *,
    job_id,
    epoch: int,
    shard: int,
    celery_id: str,
    error: str,
    error_class: str,
    detail: str,
    broker_down: bool,
    round: int = 1,
) -> None:
    """A shard's delivery failed for good (retries spent, or an error retrying cannot fix)."""
    at = dict(job_id=job_id, epoch=epoch, round=round, shard=shard)
    if Task.objects.filter(**at, status=Status.SUCCEEDED).exists():
        return  # only the result's transport failed: the row holds the result
    if broker_down:
        claims.task_retrying(**at, celery_id=celery_id, error=error)
        return
    claims.task_fail(**at, error=error, error_class=error_class)
    where = f"shard {shard} of epoch {epoch}" + (f", round {round}" if round > 1 else "")
    lifecycle.job_fail(
        job_id=job_id,
        reason=failure_reason(job_id=job_id, what=where, error=error, error_class=error_class),
        detail=detail,
        error_class=error_class,
    )


def aggregate_failed(
    *, job_id, epoch: int, error: str, error_class: str, detail: str, broker_down: bool, round: int = 1
) -> None:
    """A round's aggregate failed for good (a duplicate's failure after the round was recorded changes nothing)."""
    if broker_down or selectors.round_recorded(job_id=job_id, epoch=epoch, round=round):
        return
    where = f"aggregating epoch {epoch}" + (f", round {round}" if round > 1 else "")
    lifecycle.job_fail(
        job_id=job_id,
        reason=failure_reason(job_id=job_id, what=where, error=error, error_class=error_class),
        detail=detail,
        error_class=error_class,
    )


def failure_reason(*, job_id, what: str, error: str, error_class: str) -> str:
    """The job's ``error``: what failed and why, and for a diverged job what to do instead."""
    if error_class != DIVERGED:
        return f"{what} failed ({error_class}): {error}"
    job = Job.objects.filter(id=job_id).first()
    if job is None:
        return error
    # Resuming starts from the last checkpoint with the same hyperparameters, and the
    # training is deterministic: it would reach the same NaN at the same step.
    reason = (
        f"{error}. Training diverged: resuming the same spec will not help (it would diverge again "
        f"at the same step); submit it again with a lower learning_rate (this one is {job.learning_rate:g})."
    )
    epochs = Checkpoint.objects.filter(job_id=job_id, kind=Checkpoint.Kind.EPOCH)
    kept = epochs.order_by("-epoch").values_list("epoch", flat=True).first()
    if kept is not None:
        reason += f" The checkpoint of epoch {kept}, the last with finite weights, is kept."
    return reason
