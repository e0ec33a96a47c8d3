"""Writes to storage that have a database row: checkpoints, and a job's objects."""

from __future__ import annotations

import hashlib

from django.core.files.storage import default_storage

from storage_app.blobs import blob_delete, blob_write, checkpoint_key, job_prefix
from storage_app.models import Checkpoint


def checkpoint_save(*, job, epoch: int, kind: str, data: bytes, val_accuracy: float | None) -> Checkpoint:
    """Write the checkpoint bytes and record them; a second call for the same slot updates it."""
    key = blob_write(checkpoint_key(job.id, epoch, kind), data)
    checkpoint, _ = Checkpoint.objects.update_or_create(
        job=job,
        epoch=epoch,
        kind=kind,
        defaults={
            "file": key,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "val_accuracy": val_accuracy,
        },
    )
    return checkpoint


def checkpoints_to_keep(checkpoints: list[Checkpoint], keep_last: int) -> set[int]:
    """IDs kept by retention: the last ``keep_last`` epoch checkpoints, the best one
    (highest validation accuracy, earliest on a tie) and every final one. A checkpoint
    without a validation accuracy is of an epoch the job's ``eval_every`` skipped (the
    accuracy is known when a checkpoint is saved): it is kept while among the last."""
    epochs = sorted((c for c in checkpoints if c.kind == Checkpoint.Kind.EPOCH), key=lambda c: c.epoch)
    keep = {c.id for c in epochs[-keep_last:]} if keep_last > 0 else set()
    scored = [c for c in epochs if c.val_accuracy is not None]
    if scored:
        keep.add(max(scored, key=lambda c: (c.val_accuracy, -c.epoch)).id)
    keep |= {c.id for c in checkpoints if c.kind == Checkpoint.Kind.FINAL}
    return keep


def checkpoints_prune(*, job) -> list[int]:
    """Apply the job's retention; returns the epochs whose checkpoints were deleted."""
    checkpoints = list(job.checkpoints.all())
    keep = checkpoints_to_keep(checkpoints, job.keep_checkpoints)
    dropped = []
    for c in checkpoints:
        if c.id not in keep:
            blob_delete(c.file.name)
            c.delete()
            dropped.append(c.epoch)
    return dropped


def prefix_delete(prefix: str, storage=default_storage) -> int:
    """Delete every object under ``prefix`` (a folder in local storage, a key prefix in S3)."""
    try:
        dirs, files = storage.listdir(prefix)
    except FileNotFoundError:
        return 0
    count = 0
    for name in files:
        storage.delete(f"{prefix}/{name}")
        count += 1
    for sub in dirs:
        count += prefix_delete(f"{prefix}/{sub}", storage)
    return count


def job_objects_delete(job_id) -> int:
    return prefix_delete(job_prefix(job_id))
