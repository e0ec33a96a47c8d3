"""``init_from``: the weights a job's epoch 1 starts from, a checkpoint of one of the
owner's own jobs or a safetensors file they uploaded (``storage_app.weights``).

The spec names a source; ``init_from_resolve`` checks what can be checked without
torch and returns the reference the job stores (the row's id and the sha256 of its
bytes, which the worker checks again before loading: ``workers.init_weights``).
Whether every tensor fits the job's model is known only once a worker builds it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from rest_framework import serializers

from jobs.models import Job
from storage_app.models import Checkpoint, Weights
from storage_app.weights import FLOAT_DTYPES

SHAPE = (
    'init_from is {"job": "<id of one of your jobs>", "checkpoint": "final" | "best" | <epoch>} '
    'or {"weights": "<id or name of your uploaded weights>"}.'
)


@dataclass(frozen=True)
class InitSource:
    """A resolved source: the reference the job stores, and for a job's checkpoint the
    model it holds (``model_type``, ``model_args``), which must be the new job's."""

    reference: dict
    model: tuple[str, dict] | None = None


def _checkpoints_held(job: Job) -> str:
    held = list(job.checkpoints.all())
    names = ["final"] if any(c.kind == Checkpoint.Kind.FINAL for c in held) else []
    best = _best(held)
    if best is not None:
        names.append(f"best (epoch {best.epoch})")
    epochs = [str(c.epoch) for c in held if c.kind == Checkpoint.Kind.EPOCH]
    if epochs:
        names.append(f"epoch{'s' if len(epochs) > 1 else ''} {', '.join(epochs)}")
    return "it has " + "; ".join(names) if names else "it has no checkpoint"


def _best(checkpoints: list[Checkpoint]) -> Checkpoint | None:
    """The evaluated epoch checkpoint with the highest validation accuracy, the earliest
    on a tie (the one retention keeps as the best)."""
    scored = [c for c in checkpoints if c.kind == Checkpoint.Kind.EPOCH and c.val_accuracy is not None]
    return max(scored, key=lambda c: (c.val_accuracy, -c.epoch)) if scored else None


def _checkpoint_of(job: Job, which) -> Checkpoint | None:
    if which == "final":
        return job.checkpoints.filter(kind=Checkpoint.Kind.FINAL).first()
    if which == "best":
        return _best(list(job.checkpoints.all()))
    return job.checkpoints.filter(kind=Checkpoint.Kind.EPOCH, epoch=which).first()


def _from_job(owner, value: dict) -> InitSource:
    job_id, which = value["job"], value.get("checkpoint", "final")
    if which not in ("final", "best") and not (isinstance(which, int) and not isinstance(which, bool) and which >= 1):
        raise serializers.ValidationError(f'checkpoint is "final", "best" or an epoch number >= 1, not {which!r}.')
    try:
        job = Job.objects.filter(owner=owner, id=uuid.UUID(str(job_id))).first() if owner is not None else None
    except ValueError:
        job = None
    if job is None:
        raise serializers.ValidationError(f"Unknown job {str(job_id)[:100]!r}: not one of yours.")
    if job.is_active:
        raise serializers.ValidationError(
            f"job {job.id} is still {job.status}; start from its checkpoints once it has finished "
            "(until then its best and epoch checkpoints may change or be pruned)."
        )
    checkpoint = _checkpoint_of(job, which)
    if checkpoint is None:
        what = f"epoch {which}" if isinstance(which, int) else which
        raise serializers.ValidationError(f"job {job.id} has no {what} checkpoint; {_checkpoints_held(job)}.")
    reference = {
        "job": str(job.id),
        "checkpoint": which,
        "checkpoint_id": checkpoint.id,
        "epoch": checkpoint.epoch,
        "kind": checkpoint.kind,
        "sha256": checkpoint.sha256,
        "num_classes": job.num_classes,
    }
    return InitSource(reference=reference, model=(job.model_type, job.model_args or {}))


def _from_weights(owner, ref) -> InitSource:
    if not isinstance(ref, str) or not ref.strip():
        raise serializers.ValidationError("weights is the id or name of weights you uploaded (/api/v1/weights).")
    ref = ref.strip()
    mine = Weights.objects.filter(owner=owner) if owner is not None else Weights.objects.none()
    found = mine.filter(name=ref).first()
    if found is None:
        try:
            found = mine.filter(id=uuid.UUID(ref)).first()
        except ValueError:
            found = None
    if found is None:
        raise serializers.ValidationError(f"Unknown weights {ref[:200]!r}: not among yours (/api/v1/weights).")
    if not found.tensors:
        raise serializers.ValidationError(f"weights {found.name!r} hold no tensors.")
    if not any(dtype in FLOAT_DTYPES for dtype, _ in found.tensors.values()):
        raise serializers.ValidationError(
            f"weights {found.name!r} hold no floating-point tensor; a model's weights are floating point."
        )
    return InitSource(reference={"weights": str(found.id), "name": found.name, "sha256": found.sha256})


def init_from_resolve(*, owner, value) -> InitSource | None:
    """The source ``value`` names among ``owner``'s jobs and weights, or a
    ValidationError saying why not. Another user's job or weights read as unknown."""
    if isinstance(value, str):  # a form's text field (the dashboard), or JSON sent as a string
        try:
            value = json.loads(value)
        except ValueError:
            raise serializers.ValidationError(f"not valid JSON. {SHAPE}") from None
    if value is None:
        return None
    if not isinstance(value, dict):
        raise serializers.ValidationError(SHAPE)
    keys = set(value)
    if keys in ({"job"}, {"job", "checkpoint"}):
        return _from_job(owner, value)
    if keys == {"weights"}:
        return _from_weights(owner, value["weights"])
    unknown = sorted(keys - {"job", "checkpoint", "weights"})
    detail = f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}. " if unknown else ""
    raise serializers.ValidationError(f"{detail}{SHAPE}")


def init_from_spec(reference: dict | None) -> dict | None:
    """The spec that names the source of a stored ``reference`` again (a trial resubmitted)."""
    if reference is None:
        return None
    if "weights" in reference:
        return {"weights": reference["weights"]}
    return {"job": reference["job"], "checkpoint": reference["checkpoint"]}


def init_from_model_error(source: InitSource, *, model_type: str, model_args: dict) -> str | None:
    """Why a job of ``model_type`` with ``model_args`` cannot start from ``source``'s
    checkpoint (another model), or None. Uploaded weights are checked by the worker."""
    if source.model is None or source.model == (model_type, model_args or {}):
        return None
    held_type, held_args = source.model
    return (
        f"job {source.reference['job']} holds a {held_type} model with model_args {held_args}; this job is a "
        f"{model_type} with model_args {model_args or {}}. Starting from a job's checkpoint needs the same model."
    )


def init_from_lock(reference: dict | None) -> str | None:
    """Lock the stored source of ``reference`` for the transaction that creates the job,
    or say why it is gone. ``storage_app.weights.weights_delete`` takes the same row lock,
    so a job is never created from weights being deleted."""
    if reference is None:
        return None
    if "weights" in reference:
        weights = Weights.objects.select_for_update().filter(id=reference["weights"], sha256=reference["sha256"])
        return None if weights.first() is not None else f"weights {reference['name']!r} were deleted meanwhile."
    checkpoint = Checkpoint.objects.select_for_update().filter(
        id=reference["checkpoint_id"], sha256=reference["sha256"]
    )
    return (
        None if checkpoint.first() is not None else f"the checkpoint of job {reference['job']} was deleted meanwhile."
    )
