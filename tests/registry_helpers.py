"""Rows and data for the registry's tests: a finished job with epoch checkpoints of known
bytes (no training, where a test checks the registry's rules rather than learning), and
CSV datasets whose label noise sets how well any model can do on them."""

from __future__ import annotations

import numpy as np

from jobs.models import Job, Status
from storage_app.services import checkpoint_save
from tests.datagen import blobs
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


def csv_of(x: np.ndarray, y: np.ndarray) -> bytes:
    lines = [",".join([*(f"f{i}" for i in range(x.shape[1])), "label"])]
    lines += [",".join(f"{v:.5f}" for v in row) + f",{int(t)}" for row, t in zip(x, y, strict=True)]
    return ("\n".join(lines) + "\n").encode()


def noisy(seed: int, flip: float) -> bytes:
    """Blobs whose labels are wrong for a ``flip`` fraction of samples: the more, the lower
    the validation accuracy any model reaches on it."""
    x, y = blobs(300, 4, 3, seed=0)
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(y)) < flip
    y = np.where(wrong, rng.integers(0, 3, size=len(y)), y)
    return csv_of(x, y)
