"""What happens when a round's shards are done: the one place that decides what
follows a finished round (the next round of its epoch, or the epoch's end) and a
finished epoch (launch the next, hold it for the sweep, stop the job early, finish
it), and which epochs are evaluated.

Workers compute (average, apply the outer optimizer, evaluate, serialise the
checkpoint) and call ``round_finished`` with the result; this module stores it and decides.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from jobs import early_stopping, orchestration, signals
from jobs.models import ACTIVE_STATUSES, EpochMetric, Job, Status, Task
from jobs.services import launch, sweeps
from storage_app.models import Checkpoint
from storage_app.services import checkpoint_save, checkpoints_prune

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochResult:
    """What a worker computed for one epoch: the averaged weights as checkpoint bytes
    (safetensors with the model's config) and the epoch's numbers. The validation
    metrics are None for an epoch the job does not evaluate (``epoch_evaluates``)."""

    epoch: int
    checkpoint: bytes
    train_loss: float
    samples: int
    duration_s: float
    val_loss: float | None = None
    val_accuracy: float | None = None
    top5_accuracy: float | None = None  # with more than 10 classes
    per_class_accuracy: list | None = None  # by class index
    confusion_matrix: list | None = None  # rows: true class, columns: predicted
    state_key: str = ""  # the global weights and outer state at its end, when the checkpoint alone is not it


def round_finished(*, job: Job, epoch: int, round: int, state_key: str, result: EpochResult | None) -> bool:
    """Store a finished round and decide what follows it. ``result``: the epoch's, when
    this round ends its epoch (``epoch_finished`` takes over); None for a round inside
    its epoch, whose global weights and outer state are at ``state_key`` (content-
    addressed): the round is recorded on the job, and the next round launched.

    Recorded once: the update is conditional on the rounds recorded before it, so a
    duplicate aggregate records and launches nothing. Returns whether this call recorded
    it (the caller then deletes what the round superseded)."""
    if result is not None:
        epoch_finished(job=job, result=result)
        return True
    done = (epoch - 1) * job.rounds_per_epoch + round
    recorded = Job.objects.filter(id=job.id, completed_rounds=done - 1).update(
        completed_rounds=done, round_state_key=state_key, updated_at=timezone.now()
    )
    if recorded:
        launch.round_launch(job.id, epoch, round + 1)  # launches nothing for a job that has ended meanwhile
    return bool(recorded)


def epoch_evaluates(*, job: Job, epoch: int) -> bool:
    """Whether the aggregate of ``epoch`` evaluates the weights: every ``eval_every``
    epochs, at the last epoch, and at a sweep's ASHA rungs (trials are judged on their
    validation metrics there)."""
    return epoch % max(1, job.eval_every) == 0 or epoch >= job.epochs or sweeps.next_epoch_held(job, epoch)


def epoch_finished(*, job: Job, result: EpochResult) -> None:
    """Store a finished epoch and decide what follows it.

    The checkpoint is saved first: the next epoch starts from it. The next epoch is then
    launched before the bookkeeping (retention, the metrics row), which overlaps with
    its start, except where it waits for a decision on this epoch: at a sweep's ASHA
    rung, until the trial is judged (or a stopped trial would already be training: work
    thrown away, a slot held past ``max_concurrent``), and at an evaluation of a job
    with early stopping, until this epoch is recorded (the next evaluation's decision
    reads this one's row, so every decision sees the same history, and a job that
    stops launches nothing). A job stopped early ends ``succeeded`` with this epoch's
    weights as its final checkpoint and ``stop_reason`` saying why.

    A duplicate call (a redelivered aggregate) is harmless: the next epoch is launched
    once and the epoch recorded once. A job that already succeeded records nothing more.
    """
    epoch = result.epoch
    if Job.objects.filter(id=job.id, status=Status.SUCCEEDED).exists():
        logger.info("job %s already succeeded; epoch %s is not recorded", job.id, epoch)
        return
    checkpoint_save(
        job=job, epoch=epoch, kind=Checkpoint.Kind.EPOCH, data=result.checkpoint, val_accuracy=result.val_accuracy
    )
    if result.state_key or job.rounds_per_epoch > 1:  # where the next epoch's first round starts from
        done = epoch * job.rounds_per_epoch
        Job.objects.filter(id=job.id, completed_rounds__lt=done).update(
            completed_rounds=done, round_state_key=result.state_key
        )
    stop_reason = _early_stop_reason(job, result)
    last = epoch >= job.epochs or stop_reason is not None
    launched = job.tasks.filter(epoch=epoch + 1).exists()  # by an earlier delivery of this step
    decides = bool(job.early_stopping) and result.val_accuracy is not None
    held = not launched and (decides or sweeps.next_epoch_held(job, epoch))
    if not (last or launched or held) and Job.objects.filter(id=job.id, status=Status.RUNNING).exists():
        launch.epoch_launch(job.id, epoch + 1)
    if last:
        checkpoint_save(
            job=job, epoch=epoch, kind=Checkpoint.Kind.FINAL, data=result.checkpoint, val_accuracy=result.val_accuracy
        )
    checkpoints_prune(job=job)  # the newest epoch is always kept: the next epoch starts from it
    epoch_record(
        job_id=job.id,
        epoch=epoch,
        train_loss=result.train_loss,
        val_loss=result.val_loss,
        val_accuracy=result.val_accuracy,
        top5_accuracy=result.top5_accuracy,
        per_class_accuracy=result.per_class_accuracy,
        confusion_matrix=result.confusion_matrix,
        samples=result.samples,
        duration_s=result.duration_s,
        stop_reason=stop_reason or "",
    )
    goes_on = sweeps.on_epoch_recorded(job.id, epoch) if job.sweep_id else True
    if held and goes_on and not last:
        launch.epoch_launch(job.id, epoch + 1)  # launches nothing for a job that has ended meanwhile
    shown = "not evaluated" if result.val_accuracy is None else f"val_accuracy {result.val_accuracy:.4f}"
    logger.info("job %s epoch %s: %s%s", job.id, epoch, shown, f"; stopped: {stop_reason}" if stop_reason else "")


def _early_stop_reason(job: Job, result: EpochResult) -> str | None:
    """Why the job stops after this evaluated epoch (its spec's ``early_stopping``), or
    None. The history is this epoch and the evaluated epochs recorded before it, each of
    which was recorded before the epoch after it was launched."""
    rule = early_stopping.rule_of(job.early_stopping)
    if rule is None or result.val_accuracy is None or result.epoch >= job.epochs:
        return None
    metric = rule["metric"]
    history = list(
        EpochMetric.objects.filter(job=job, epoch__lt=result.epoch, **{f"{metric}__isnull": False})
        .order_by("epoch")
        .values_list("epoch", metric)
    )
    history.append((result.epoch, getattr(result, metric)))
    return early_stopping.stop_reason(
        history, metric=metric, patience=int(rule["patience"]), min_delta=float(rule["min_delta"])
    )


def epoch_record(
    *,
    job_id,
    epoch: int,
    train_loss: float,
    val_loss: float | None,
    val_accuracy: float | None,
    samples: int,
    duration_s: float,
    top5_accuracy: float | None = None,
    per_class_accuracy: list | None = None,
    confusion_matrix: list | None = None,
    stop_reason: str = "",
) -> bool:
    """Record an epoch's metrics once; the job succeeds when its every epoch is recorded,
    or at this epoch when ``stop_reason`` says why it stops early. Returns False when
    this epoch was already recorded (a duplicate delivery)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(id=job_id)
        if EpochMetric.objects.filter(job=job, epoch=epoch).exists():
            return False
        EpochMetric.objects.create(
            job=job,
            epoch=epoch,
            train_loss=train_loss,
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            top5_accuracy=top5_accuracy,
            per_class_accuracy=per_class_accuracy,
            confusion_matrix=confusion_matrix,
            samples=samples,
            samples_per_s=samples / duration_s if duration_s > 0 else 0.0,
            duration_s=duration_s,
        )
        _job_latest(job, epoch, train_loss=train_loss, val_loss=val_loss, val_accuracy=val_accuracy)
        if job.status == Status.RUNNING and stop_reason:
            _job_stop_early(job, epoch, stop_reason)
        elif job.status == Status.RUNNING and EpochMetric.objects.filter(job=job).count() >= job.epochs:
            job.status = Status.SUCCEEDED
            job.finished_at = timezone.now()
        job.save(
            update_fields=[
                "completed_epochs",
                "completed_rounds",
                "train_loss",
                "val_loss",
                "val_accuracy",
                "best_val_accuracy",
                "status",
                "finished_at",
                "stop_reason",
                "total_tasks",
                "updated_at",
            ]
        )
    if job.status == Status.SUCCEEDED:
        signals.job_ended.send(sender=Job, job_id=job.id)
    return True


def _job_latest(job: Job, epoch: int, *, train_loss: float, val_loss: float | None, val_accuracy: float | None):
    """The job's latest numbers after recording ``epoch`` (records may arrive out of
    order): its train loss is the highest epoch's, its validation metrics the highest
    evaluated epoch's (an epoch ``eval_every`` skipped has none), its best the best yet."""
    if epoch >= job.completed_epochs:
        job.train_loss = train_loss
    if val_accuracy is not None:
        if not EpochMetric.objects.filter(job=job, epoch__gt=epoch, val_accuracy__isnull=False).exists():
            job.val_loss, job.val_accuracy = val_loss, val_accuracy
        if job.best_val_accuracy is None or val_accuracy > job.best_val_accuracy:
            job.best_val_accuracy = val_accuracy
    job.completed_epochs = max(job.completed_epochs, epoch)
    job.completed_rounds = max(job.completed_rounds, epoch * max(1, job.rounds_per_epoch))


def _job_stop_early(job: Job, epoch: int, reason: str) -> None:
    """End the job (its row locked by the caller) ``succeeded`` at ``epoch``. Its tasks
    count as all there is, so its progress reads complete. Any later epoch already
    launched is cancelled: its queued messages revoked, its running shards stop at their
    next heartbeat (the job is no longer running), its aggregate records nothing."""
    job.status = Status.SUCCEEDED
    job.finished_at = timezone.now()
    job.stop_reason = reason[:200]
    job.total_tasks = job.completed_tasks
    later = Task.objects.filter(job=job, epoch__gt=epoch, status__in=ACTIVE_STATUSES)
    queued = [cid for cid in later.filter(status=Status.QUEUED).values_list("celery_id", flat=True) if cid]
    later.update(status=Status.CANCELLED, finished_at=job.finished_at, error="the job stopped early")
    if queued:
        transaction.on_commit(lambda: orchestration.revoke(queued), robust=True)
