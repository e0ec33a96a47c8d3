"""Rows for the registry's tests: a finished job with epoch checkpoints of known bytes
(no training, where a test checks the registry's rules rather than learning)."""

from __future__ import annotations

from jobs.models import Job, Status
from storage_app.services import checkpoint_save
from tests.factories import JobFactory


def checkpoint_bytes(job: Job, epoch: int) -> bytes:
    return f"{job.id}-{epoch}".encode()


def finished_job(user, accuracies=(0.5, 0.9, 0.7), keep: int = 10) -> Job:
    """Epochs 1..n with these validation accuracies, and a final checkpoint (the last epoch's bytes)."""
    job = JobFactory(owner=user, epochs=len(accuracies), status=Status.SUCCEEDED, keep_checkpoints=keep)
    for epoch, accuracy in enumerate(accuracies, start=1):
        checkpoint_save(job=job, epoch=epoch, kind="epoch", data=checkpoint_bytes(job, epoch), val_accuracy=accuracy)
    last = len(accuracies)
    checkpoint_save(job=job, epoch=last, kind="final", data=checkpoint_bytes(job, last), val_accuracy=accuracies[-1])
    return job
