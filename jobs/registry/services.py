"""Writes of the registry: models, versions (with their file), aliases.

Locks, and the race each closes:

* a model's row is locked while a version number is given or an alias moved: two
  registrations at once get n+1 and n+2, and an alias read mid-move is the old version
  or the new one, never neither;
* a ``VersionFile`` row is locked while its object is written and while it is released:
  a version made from the same bytes as a version being deleted either finds the object
  still there or writes it again, never a row without its object.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re

from django.db import transaction
from django.db.models import F

from jobs.models import Job
from jobs.registry import selectors, signals
from jobs.registry.models import ModelAlias, ModelVersion, RegisteredModel, VersionFile
from jobs.services import projects
from jobs.services.sweeps import trial_spec
from storage_app.blobs import blob_delete, blob_read, blob_write
from storage_app.models import Checkpoint

logger = logging.getLogger(__name__)

MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
ALIAS_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
# "latest" would be ambiguous beside the versions, "v3" beside version 3 (MLflow's rule too).
RESERVED_ALIAS = re.compile(r"latest|[vV]\d+")


class RegistryError(Exception):
    """A registry request that cannot be honoured; ``field`` names the input at fault,
    ``status`` is the HTTP answer (400 bad input, 404 not found, 409 conflict)."""

    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(message)
        self.field, self.status = field, status


def model_name_error(name: str) -> str | None:
    if not MODEL_NAME.fullmatch(name or ""):
        return "A model name is 1 to 100 letters, digits, '-' or '_', starting with a letter or digit."
    return None


def alias_name_error(name: str) -> str | None:
    if not ALIAS_NAME.fullmatch(name or ""):
        return "An alias is 1 to 64 letters, digits, '-' or '_', starting with a letter."
    if RESERVED_ALIAS.fullmatch(name):
        return f"{name!r} is reserved: it would read as a version."
    return None


def version_file_key(sha256: str) -> str:
    return f"registry/{sha256[:2]}/{sha256}.safetensors"


# Models ---------------------------------------------------------------------------------


def model_create(*, owner, name: str, description: str = "", tags: list[str] | None = None) -> RegisteredModel:
    problem = model_name_error(name)
    if problem:
        raise RegistryError("name", problem)
    with transaction.atomic():
        if RegisteredModel.objects.filter(owner=owner, name=name).exists():
            raise RegistryError("name", f"you already have a model named {name!r}", 409)
        model = RegisteredModel.objects.create(owner=owner, name=name, description=description)
        if tags:
            projects.tags_set(obj=model, names=tags)
        return model


def model_get_or_create(*, owner, name: str) -> RegisteredModel:
    problem = model_name_error(name)
    if problem:
        raise RegistryError("name", problem)
    model, _ = RegisteredModel.objects.get_or_create(owner=owner, name=name)
    return model


def model_update(
    *, model: RegisteredModel, description: str | None = None, tags: list[str] | None = None
) -> RegisteredModel:
    """Change a model's description (its note) and/or its tags."""
    with transaction.atomic():
        if description is not None:
            model.description = description
        model.save(update_fields=["description", "updated_at"])
        if tags is not None:
            projects.tags_set(obj=model, names=tags)
    return model


def model_delete(*, model: RegisteredModel) -> None:
    """The model with its versions and aliases; files no other version holds go once
    this commits (``version_rows_deleted``)."""
    model.delete()


# Versions ---------------------------------------------------------------------------------


def _plain(value):
    """JSON for what a spec field may hold besides plain values: related rows, a manager of them."""
    if hasattr(value, "all"):
        return sorted(str(item) for item in value.all())
    return str(getattr(value, "pk", value))


def _job_spec(job: Job) -> dict:
    """The job's spec as the jobs API takes it (``trial_spec``), as plain JSON."""
    return json.loads(json.dumps(trial_spec(job), default=_plain))


def _lineage(job: Job, checkpoint: Checkpoint) -> dict:
    dataset = job.dataset_ref
    return {
        "job": job,
        "job_uuid": job.id,
        "job_spec": _job_spec(job),
        "checkpoint_epoch": checkpoint.epoch,
        "checkpoint_sha256": checkpoint.sha256,
        "dataset_ref": dataset.id if dataset else None,
        "dataset_name": job.dataset,
        "dataset_sha256": job.dataset_sha256,
        "dataset_version": job.dataset_version,
        "metrics": selectors.epoch_metrics(job, checkpoint.epoch),
        "class_names": list(job.class_names or (dataset.class_names if dataset else [])),
        "model_config": {**job.model_config, "model_args": job.model_args},
    }


def _file_hold(checkpoint: Checkpoint) -> VersionFile:
    """The registry's copy of the checkpoint's bytes, its row locked until the caller's
    transaction ends: written when no version holds these bytes yet (or its object was
    lost), checked against the recorded sha256 on the way."""
    sha = checkpoint.sha256
    held, _ = VersionFile.objects.select_for_update().get_or_create(
        sha256=sha, defaults={"file": version_file_key(sha), "size": checkpoint.size}
    )
    if held.file.storage.exists(held.file.name):
        return held
    try:
        data = blob_read(checkpoint.file.name)
    except FileNotFoundError:
        raise RegistryError(
            "checkpoint", "the checkpoint was deleted meanwhile (the job's retention or its deletion)", 409
        ) from None
    got = hashlib.sha256(data).hexdigest()
    if got != sha:
        raise RegistryError("checkpoint", f"the stored checkpoint has sha256 {got}, not the recorded {sha}", 409)
    blob_write(held.file.name, data)
    return held


def version_create(
    *, model: RegisteredModel, job: Job, source: str = "best", epoch: int | None = None, description: str = ""
) -> ModelVersion:
    """Version n+1 of ``model`` from one of ``job``'s checkpoints (the caller has checked
    the job is the model owner's); ``model.version_created`` goes out once it commits."""
    if job.owner_id != model.owner_id:
        raise RegistryError("job", "no such job of yours")
    if source == ModelVersion.Source.EPOCH and epoch is None:
        raise RegistryError("epoch", "give the epoch whose checkpoint to register")
    checkpoint = selectors.checkpoint_pick(job, source, epoch)
    if checkpoint is None:
        which = f"epoch {epoch}" if source == ModelVersion.Source.EPOCH else source
        kept = ", ".join(sorted({f"{c.kind} {c.epoch}" for c in job.checkpoints.all()})) or "none"
        raise RegistryError("checkpoint", f"job {job.id} has no {which} checkpoint (kept: {kept})")
    with transaction.atomic():
        RegisteredModel.objects.filter(pk=model.pk).update(last_version=F("last_version") + 1)
        model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        version = ModelVersion.objects.create(
            model=model,
            version=model.last_version,
            description=description,
            file=_file_hold(checkpoint),
            source=source,
            **_lineage(job, checkpoint),
        )
        transaction.on_commit(
            lambda: signals.version_created.send(sender=ModelVersion, version_id=version.id), robust=True
        )
    logger.info("registered %s v%s from job %s (%s epoch %s)", model.name, version.version, job.id, source, epoch)
    return version


def version_delete(*, version: ModelVersion) -> None:
    """A version no alias points at; its file goes once no version holds it."""
    with transaction.atomic():
        RegisteredModel.objects.select_for_update().filter(pk=version.model_id).first()
        pointing = sorted(version.aliases.values_list("name", flat=True))
        if pointing:
            raise RegistryError(
                "version", f"aliases point at this version: {', '.join(pointing)}; move them first", 409
            )
        version.delete()


def version_rows_deleted(sender, *, instance: ModelVersion, **kwargs) -> None:
    """``post_delete`` receiver for ModelVersion (``RegistryConfig.ready``): once the delete
    commits, the file goes if no version holds it any more."""
    file_id = instance.file_id
    transaction.on_commit(lambda: version_file_release(file_id=file_id), robust=True)


def version_file_release(*, file_id) -> bool:
    """Delete a VersionFile and its object when no version holds it; True when deleted.
    The object is deleted before the row, under the row's lock (see the module's doc)."""
    with transaction.atomic():
        held = VersionFile.objects.select_for_update().filter(id=file_id).first()
        if held is None or held.versions.exists():
            return False
        blob_delete(held.file.name)
        held.delete()
    return True


# Aliases --------------------------------------------------------------------------------


def alias_set(*, model: RegisteredModel, name: str, version: int) -> tuple[ModelAlias, int | None]:
    """Point alias ``name`` at ``version`` (creating it); returns it and the version it
    pointed at before (None: new). ``model.alias_moved`` goes out once it commits, when it moved."""
    problem = alias_name_error(name)
    if problem:
        raise RegistryError("alias", problem)
    with transaction.atomic():
        model = RegisteredModel.objects.select_for_update().get(pk=model.pk)
        target = model.versions.filter(version=version).first()
        if target is None:
            raise RegistryError("version", f"{model.name} has no version {version}")
        alias = ModelAlias.objects.filter(model=model, name=name).select_related("version").first()
        previous = alias.version.version if alias else None
        if alias is None:
            alias = ModelAlias.objects.create(model=model, name=name, version=target)
        elif previous != version:
            alias.version = target
            alias.save(update_fields=["version", "updated_at"])
        if previous != version:
            alias_id = alias.id
            transaction.on_commit(
                lambda: signals.alias_moved.send(
                    sender=ModelAlias, alias_id=alias_id, previous_version=previous, version=version
                ),
                robust=True,
            )
    return alias, previous


def alias_delete(*, model: RegisteredModel, name: str) -> None:
    with transaction.atomic():
        RegisteredModel.objects.select_for_update().filter(pk=model.pk).first()
        deleted, _ = ModelAlias.objects.filter(model=model, name=name).delete()
    if not deleted:
        raise RegistryError("alias", f"{model.name} has no alias {name!r}", 404)
