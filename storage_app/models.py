"""Checkpoints: safetensors files in object storage, with their sha256."""

from __future__ import annotations

from django.db import models


class Checkpoint(models.Model):
    class Kind(models.TextChoices):
        EPOCH = "epoch", "epoch"
        FINAL = "final", "final"

    job = models.ForeignKey("jobs.Job", on_delete=models.CASCADE, related_name="checkpoints")
    epoch = models.PositiveIntegerField()
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.EPOCH)
    file = models.FileField(max_length=500)
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    val_accuracy = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["epoch", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["job", "epoch", "kind"], name="checkpoint_unique_job_epoch_kind")
        ]

    def __str__(self) -> str:
        return f"{self.kind} checkpoint epoch {self.epoch} of job {self.job_id}"
