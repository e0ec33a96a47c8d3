"""Checkpoints: safetensors files in object storage, with their sha256."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from storage_app.storages import datasets_storage


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

    @property
    def download_name(self) -> str:
        """The file name a download gets: ``<job id>-final`` or ``<job id>-epoch-<n>``."""
        which = "final" if self.kind == self.Kind.FINAL else f"epoch-{self.epoch}"
        return f"{self.job_id}-{which}.safetensors"


class Dataset(models.Model):
    """A user's dataset: one file in storage, content-addressed by its sha256. Uploading
    under a name the owner has makes the next version of it (``version``); a job naming
    the dataset takes the newest, ``name@3`` names version 3."""

    class Format(models.TextChoices):
        CSV = "csv", "CSV with a label column"
        NPZ = "npz", "NPZ with arrays X and y"
        IDX = "idx", "MNIST IDX files (zip)"
        IMAGES = "images", "image folders (zip or tar of class_name/*.png|jpg)"
        PARQUET = "parquet", "Parquet with a label column"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    version = models.PositiveIntegerField(default=1, help_text="1, 2, ... per owner and name")
    format = models.CharField(max_length=8, choices=Format.choices)
    file = models.FileField(storage=datasets_storage, max_length=500)
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.PositiveBigIntegerField()
    num_samples = models.PositiveIntegerField()
    input_shape = models.JSONField()
    num_classes = models.PositiveIntegerField()
    label_column = models.CharField(max_length=200, blank=True, default="")
    source = models.CharField(max_length=1000, blank=True, help_text="the path or URI it was imported from")
    class_names = models.JSONField(default=list, blank=True, help_text="label names in index order (string labels)")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name", "version"], name="dataset_unique_owner_name_version")
        ]

    def __str__(self) -> str:
        return f"{self.name}@{self.version} ({self.format}, {self.num_samples} samples)"

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3


class Weights(models.Model):
    """A safetensors weights file a user uploaded to start jobs from (``init_from``);
    content-addressed like datasets, owner-only."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="weights")
    name = models.CharField(max_length=200)
    file = models.FileField(storage=datasets_storage, max_length=500)
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.PositiveBigIntegerField()
    tensors = models.JSONField(default=dict, help_text="tensor name -> [dtype, shape], from the file's header")
    metadata = models.JSONField(default=dict, blank=True, help_text="the file's safetensors metadata")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="weights_unique_owner_name")]

    def __str__(self) -> str:
        return f"{self.name} ({len(self.tensors)} tensors)"
