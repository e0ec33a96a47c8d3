"""Registered models, their versions, the files behind them, and aliases.

A version is immutable: made once from one of its owner's job checkpoints, it keeps
its own copy of the checkpoint's bytes (a ``VersionFile``, content-addressed by
sha256) and a record of where they came from, so neither the job's retention nor
the job's deletion takes them away.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class RegisteredModel(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="registered_models")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, max_length=5000)
    tags = models.ManyToManyField("jobs.Tag", blank=True, related_name="registered_models")
    # Version numbers are never reused: a deleted version's number stays taken.
    last_version = models.PositiveIntegerField(default=0, help_text="the highest version number given so far")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="registeredmodel_unique_owner_name")]

    def __str__(self) -> str:
        return self.name


class VersionFile(models.Model):
    """The bytes behind one or more versions, stored once per content under
    ``registry/<sha256>``; deleted with the last version that holds them
    (``services.version_file_release``)."""

    sha256 = models.CharField(max_length=64, unique=True)
    file = models.FileField(max_length=500)
    size = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.sha256


class ModelVersion(models.Model):
    class Source(models.TextChoices):
        BEST = "best", "best epoch (highest validation accuracy)"
        FINAL = "final", "final"
        EPOCH = "epoch", "an epoch"

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    description = models.TextField(blank=True, max_length=5000)
    file = models.ForeignKey(VersionFile, on_delete=models.PROTECT, related_name="versions")
    # Lineage: what the bytes are and where they came from, kept when the job is deleted.
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="model_versions")
    job_uuid = models.UUIDField(help_text="the job it came from (kept when the job is deleted)")
    job_spec = models.JSONField(default=dict, help_text="the job's spec, as the jobs API takes it")
    source = models.CharField(max_length=8, choices=Source.choices)
    checkpoint_epoch = models.PositiveIntegerField()
    checkpoint_sha256 = models.CharField(max_length=64)
    dataset_ref = models.UUIDField(null=True, blank=True, help_text="the uploaded dataset's id (none for a built-in)")
    dataset_name = models.CharField(max_length=200)
    dataset_sha256 = models.CharField(max_length=64, blank=True)
    dataset_version = models.PositiveIntegerField(null=True, blank=True)
    metrics = models.JSONField(default=dict, help_text="the checkpoint's epoch: val_accuracy, val_loss, train_loss")
    class_names = models.JSONField(default=list, blank=True)
    model_config = models.JSONField(default=dict, help_text="model_type, input_shape, num_classes, model_args")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model", "version"]
        constraints = [models.UniqueConstraint(fields=["model", "version"], name="modelversion_unique_model_version")]

    def __str__(self) -> str:
        return f"{self.model.name} v{self.version}"

    @property
    def download_name(self) -> str:
        return f"{self.model.name}-v{self.version}.safetensors"


class ModelAlias(models.Model):
    """A name (``champion``, ``staging``) pointing at one version of its model; moved by
    ``services.alias_set`` with the model's row locked."""

    model = models.ForeignKey(RegisteredModel, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=64)
    # RESTRICT: a version an alias points at is not deleted on its own (move the alias
    # first); deleting the whole model takes both.
    version = models.ForeignKey(ModelVersion, on_delete=models.RESTRICT, related_name="aliases")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model", "name"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="modelalias_unique_model_name")]

    def __str__(self) -> str:
        return f"{self.model.name}@{self.name}"
