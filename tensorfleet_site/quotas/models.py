from __future__ import annotations

from django.conf import settings
from django.db import models


class Quota(models.Model):
    """One user's overrides of the quota defaults; an empty field keeps the default."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="quota")
    active_jobs = models.PositiveIntegerField(null=True, blank=True, help_text="jobs queued or running at once")
    shards_in_flight = models.PositiveIntegerField(
        null=True, blank=True, help_text="shards of the user's queued or running jobs, added up"
    )
    sweep_trials = models.PositiveIntegerField(null=True, blank=True, help_text="trials one sweep may plan")
    stored_bytes = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="datasets and checkpoints kept in storage, added up"
    )
    checkpoints_per_job = models.PositiveIntegerField(
        null=True, blank=True, help_text="epoch checkpoints a job may keep (keep_checkpoints)"
    )

    def __str__(self) -> str:
        return f"quota of {self.user}"
