"""Schedules and their runs. A schedule's beat entry is a django-celery-beat PeriodicTask
(``periodic_task``), written by ``services.schedule_sync`` whenever the schedule changes."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Schedule(models.Model):
    class Metric(models.TextChoices):
        VAL_ACCURACY = "val_accuracy", "val_accuracy (higher is better)"
        VAL_LOSS = "val_loss", "val_loss (lower is better)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="schedules")
    name = models.CharField(max_length=100)
    cron = models.CharField(max_length=200, help_text="minute hour day-of-month month day-of-week, in UTC")
    spec = models.JSONField(help_text="a job spec as the jobs API takes it; the dataset by name")
    enabled = models.BooleanField(default=True)
    # The promotion rule (all three, or none): register the run's best checkpoint in
    # ``promote_model`` and move ``promote_alias`` to it when ``metric`` beats the version
    # behind the alias (or the alias is empty).
    metric = models.CharField(max_length=16, choices=Metric.choices, default=Metric.VAL_ACCURACY)
    promote_model = models.CharField(max_length=100, blank=True)
    promote_alias = models.CharField(max_length=64, blank=True)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_run_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="schedule_unique_owner_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.cron})"

    @property
    def promotes(self) -> bool:
        return bool(self.promote_model and self.promote_alias)


class ScheduleRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "running (its job is queued or running)"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        CANCELLED = "cancelled", "cancelled"
        REFUSED = "refused", "refused (the spec or a quota kept its job from starting)"
        SKIPPED = "skipped", "skipped (the previous run was still going)"

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="runs")
    number = models.PositiveIntegerField()
    trigger = models.CharField(max_length=8, default="beat", help_text="beat, or manual (POST .../run)")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    job = models.OneToOneField(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="schedule_run"
    )
    job_uuid = models.UUIDField(null=True, blank=True, help_text="kept when the job is deleted")
    dataset_version = models.PositiveIntegerField(null=True, blank=True, help_text="the version the run trained on")
    metric_value = models.FloatField(null=True, blank=True, help_text="the schedule's metric at the best checkpoint")
    compared_to = models.FloatField(null=True, blank=True, help_text="the metric of the version behind the alias")
    previous_version = models.PositiveIntegerField(null=True, blank=True, help_text="behind the alias before")
    promoted = models.BooleanField(default=False)
    version = models.PositiveIntegerField(null=True, blank=True, help_text="the version registered from this run")
    detail = models.TextField(blank=True, help_text="why it was refused, skipped or not promoted")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["schedule", "-number"]
        constraints = [models.UniqueConstraint(fields=["schedule", "number"], name="schedulerun_unique_number")]

    def __str__(self) -> str:
        return f"{self.schedule.name} run {self.number} ({self.status})"
