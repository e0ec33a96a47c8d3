"""What happens when an epoch's shards are done: the one place that decides what
follows a finished epoch (launch the next, hold it for the sweep, finish the job).

Workers compute (average, evaluate, serialise the checkpoint) and call
``epoch_finished`` with the result; this module stores it and decides.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from jobs import signals
from jobs.models import EpochMetric, Job, Status
from jobs.services import launch, sweeps
from storage_app.models import Checkpoint
from storage_app.services import checkpoint_save, checkpoints_prune

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochResult:
    """What a worker computed for one epoch: the averaged weights as checkpoint bytes
    (safetensors with the model's config) and the epoch's numbers."""

    epoch: int
    checkpoint: bytes
    train_loss: float
    val_loss: float
    val_accuracy: float
    samples: int
    duration_s: float


def epoch_finished(*, job: Job, result: EpochResult) -> None:
    """Store a finished epoch and decide what follows it.

    The checkpoint is saved first: the next epoch starts from it. The next epoch is then
    launched before the bookkeeping (retention, the metrics row), which overlaps with
    its start; at a sweep's ASHA rung it is held until the trial is judged, or a stopped
    trial would already be training (work thrown away, a slot held past
    ``max_concurrent``). A duplicate call (a redelivered aggregate) is harmless: the next
    epoch is launched once and the epoch recorded once.
    """
    epoch = result.epoch
    checkpoint_save(
        job=job, epoch=epoch, kind=Checkpoint.Kind.EPOCH, data=result.checkpoint, val_accuracy=result.val_accuracy
    )
    launched = job.tasks.filter(epoch=epoch + 1).exists()  # by an earlier delivery of this step
    held = not launched and sweeps.next_epoch_held(job, epoch)
    if epoch < job.epochs and not (launched or held) and Job.objects.filter(id=job.id, status=Status.RUNNING).exists():
        launch.epoch_launch(job.id, epoch + 1)
    if epoch == job.epochs:
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
        samples=result.samples,
        duration_s=result.duration_s,
    )
    if job.sweep_id and sweeps.on_epoch_recorded(job.id, epoch) and held:
        launch.epoch_launch(job.id, epoch + 1)  # early stopping let it go on
    logger.info("job %s epoch %s: val_accuracy %.4f", job.id, epoch, result.val_accuracy)


def epoch_record(
    *, job_id, epoch: int, train_loss: float, val_loss: float, val_accuracy: float, samples: int, duration_s: float
) -> bool:
    """Record an epoch's metrics once; the job succeeds when its every epoch is recorded.

    Epochs are launched before the previous one is evaluated, so records can arrive
    out of order: the job's latest metrics follow the highest epoch recorded.
    Returns False when this epoch was already recorded (a duplicate delivery).
    """
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
            samples=samples,
            samples_per_s=samples / duration_s if duration_s > 0 else 0.0,
            duration_s=duration_s,
        )
        if epoch >= job.completed_epochs:
            job.train_loss, job.val_loss, job.val_accuracy = train_loss, val_loss, val_accuracy
        job.completed_epochs = max(job.completed_epochs, epoch)
        if job.best_val_accuracy is None or val_accuracy > job.best_val_accuracy:
            job.best_val_accuracy = val_accuracy
        if job.status == Status.RUNNING and EpochMetric.objects.filter(job=job).count() >= job.epochs:
            job.status = Status.SUCCEEDED
            job.finished_at = timezone.now()
        job.save(
            update_fields=[
                "completed_epochs",
                "train_loss",
                "val_loss",
                "val_accuracy",
                "best_val_accuracy",
                "status",
                "finished_at",
                "updated_at",
            ]
        )
    if job.status == Status.SUCCEEDED:
        signals.job_ended.send(sender=Job, job_id=job.id)
    return True
