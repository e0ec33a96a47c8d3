"""Writes to storage that have a database row: checkpoints."""

from __future__ import annotations

import hashlib

from storage_app.blobs import blob_write, checkpoint_key
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
