"""Reads of the registry: an owner sees their own models only (staff too, as with jobs)."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from jobs import selectors as job_selectors
from jobs.models import EpochMetric, Job
from jobs.registry.models import ModelAlias, ModelVersion, RegisteredModel
from storage_app.models import Checkpoint


def models_visible_to(user) -> QuerySet[RegisteredModel]:
    if not user.is_authenticated:
        return RegisteredModel.objects.none()
    return RegisteredModel.objects.filter(owner=user)


def model_of(user, name: str) -> RegisteredModel | None:
    return models_visible_to(user).filter(name=name).first()


def versions_of(model: RegisteredModel) -> QuerySet[ModelVersion]:
    return model.versions.select_related("file", "model").prefetch_related("aliases").order_by("version")


def version_of(model: RegisteredModel, number) -> ModelVersion | None:
    return versions_of(model).filter(version=number).first()


def alias_of(model: RegisteredModel, name: str) -> ModelAlias | None:
    return model.aliases.select_related("version__file", "version__model").filter(name=name).first()


def job_of(user, job_id) -> Job | None:
    """One of the user's jobs by id (the jobs API's rule), or None."""
    try:
        job_id = uuid.UUID(str(job_id))
    except ValueError:
        return None
    return job_selectors.jobs_visible_to(user).select_related("dataset_ref").filter(id=job_id).first()


def checkpoint_pick(job: Job, source: str, epoch: int | None = None) -> Checkpoint | None:
    """The job's checkpoint a version is made from: ``best`` (highest validation accuracy,
    earliest on a tie: the one retention keeps), ``final``, or ``epoch`` number ``epoch``."""
    checkpoints = Checkpoint.objects.filter(job=job)
    if source == ModelVersion.Source.FINAL:
        return checkpoints.filter(kind=Checkpoint.Kind.FINAL).first()
    if source == ModelVersion.Source.EPOCH:
        if epoch is None:
            return None
        return checkpoints.filter(kind=Checkpoint.Kind.EPOCH, epoch=epoch).first()
    scored = checkpoints.filter(val_accuracy__isnull=False).order_by("-val_accuracy", "epoch", "kind")
    return scored.first()


def epoch_metrics(job: Job, epoch: int) -> dict:
    """The numbers of the checkpoint's epoch, as a version records them."""
    row = EpochMetric.objects.filter(job=job, epoch=epoch).first()
    if row is None:
        return {"epoch": epoch}
    found = {
        "epoch": epoch,
        "val_accuracy": row.val_accuracy,
        "val_loss": row.val_loss,
        "train_loss": row.train_loss,
        "top5_accuracy": row.top5_accuracy,
    }
    return {k: v for k, v in found.items() if v is not None}
