"""Epoch 1 of a job with ``init_from`` starts from another model's weights.

The job records its source (``jobs.init_from``): a checkpoint of one of the owner's
jobs, or weights they uploaded, with the sha256 of the bytes. Every shard of epoch 1
reads those bytes, checks the sha256, loads them with safetensors (nothing unpickled)
and copies each tensor whose name and shape fit into the job's freshly seeded model,
so every shard starts from the same weights. When the class count differs, the
classifier head (the tensors whose shapes differ only where the model has
``num_classes``) keeps the job's seeded initialisation. Any other misfit fails the
job with the list of the tensors that do not fit: only a worker can build the model,
so for uploaded weights this is where a misfit is found.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import torch
from safetensors.torch import load as st_load
from torch import nn

from jobs.models import Job
from storage_app.blobs import blob_read, storage_errors
from storage_app.models import Checkpoint, Weights
from workers.weights import CONFIG_KEY, read_metadata

LISTED = 10  # tensors named per kind of misfit in a job's error


class InitWeightsMismatch(ValueError):
    """The source's tensors do not fit the job's model; the message lists them."""


class InitSourceUnavailable(ValueError):
    """The source was deleted or changed since the job was created."""


@dataclass
class FitPlan:
    """Which source tensors go where: ``loaded`` are copied, ``head`` keep the seeded
    initialisation; anything in ``problems`` means the source does not fit."""

    loaded: list[str] = field(default_factory=list)
    head: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return not (self.missing or self.unexpected or self.wrong)


def _differs_by_classes(source: tuple, target: tuple, num_classes: int, source_classes: int | None) -> bool:
    """The shapes differ, and only in dimensions where the model has ``num_classes`` and
    the source ``source_classes``."""
    if len(source) != len(target) or source == target or source_classes in (None, num_classes):
        return False
    return all(s == t or (t == num_classes and s == source_classes) for s, t in zip(source, target, strict=True))


def infer_source_classes(source: dict[str, tuple], target: dict[str, tuple], num_classes: int) -> int | None:
    """The source's class count when it is not recorded (uploaded weights without
    TensorFleet metadata): the one size that stands where the model has ``num_classes``
    in every tensor whose shape differs only there; None when there is no single one."""
    seen: set[int] = set()
    for name, shape in target.items():
        other = source.get(name)
        if other is None or len(other) != len(shape) or tuple(other) == tuple(shape):
            continue
        diffs = [(s, t) for s, t in zip(other, shape, strict=True) if s != t]
        if all(t == num_classes for _, t in diffs):
            seen.update(s for s, _ in diffs)
    return seen.pop() if len(seen) == 1 else None


def fit_plan(
    source: dict[str, torch.Tensor],
    target: dict[str, torch.Tensor],
    *,
    num_classes: int,
    source_classes: int | None,
) -> FitPlan:
    """Match the source's tensors to the model's by name, shape and dtype (floating
    point converts to floating point; anything else must be the same dtype)."""
    if source_classes is None:
        shapes = {n: tuple(t.shape) for n, t in source.items()}
        source_classes = infer_source_classes(shapes, {n: tuple(t.shape) for n, t in target.items()}, num_classes)
    plan = FitPlan(unexpected=sorted(set(source) - set(target)))
    for name, here in target.items():
        there = source.get(name)
        if there is None:
            plan.missing.append(name)
        elif tuple(there.shape) == tuple(here.shape):
            compatible = there.dtype == here.dtype or (there.is_floating_point() and here.is_floating_point())
            if compatible:
                plan.loaded.append(name)
            else:
                plan.wrong.append(f"{name} is {there.dtype} in the source, {here.dtype} here")
        elif _differs_by_classes(tuple(there.shape), tuple(here.shape), num_classes, source_classes):
            plan.head.append(name)
        else:
            plan.wrong.append(f"{name} is {list(there.shape)} in the source, {list(here.shape)} here")
    return plan


def _listed(label: str, names: list[str]) -> str:
    more = f" and {len(names) - LISTED} more" if len(names) > LISTED else ""
    return f"{label}: {', '.join(names[:LISTED])}{more}"


def misfit_message(what: str, model_type: str, plan: FitPlan) -> str:
    parts = [
        _listed(label, names)
        for label, names in (
            ("wrong shape or dtype", plan.wrong),
            ("missing from the source", plan.missing),
            ("not in the model", plan.unexpected),
        )
        if names
    ]
    return f"{what} does not fit this job's {model_type} model ({'; '.join(parts)})"


def _source_bytes(reference: dict) -> tuple[bytes, str]:
    """The source's bytes, checked against the sha256 the job recorded, and its description."""
    if "weights" in reference:
        what = f"weights {reference.get('name', reference['weights'])!r}"
        weights = Weights.objects.filter(id=reference["weights"]).first()
        if weights is None:
            raise InitSourceUnavailable(f"{what}, which this job starts from, were deleted")
        with storage_errors(), weights.file.open("rb") as fh:
            data = fh.read()
    else:
        which = "final" if reference["kind"] == Checkpoint.Kind.FINAL else f"epoch {reference['epoch']}"
        what = f"the {which} checkpoint of job {reference['job']}"
        checkpoint = Checkpoint.objects.filter(id=reference["checkpoint_id"]).first()
        if checkpoint is None:
            raise InitSourceUnavailable(f"{what}, which this job starts from, was deleted")
        data = blob_read(checkpoint.file.name)
    if hashlib.sha256(data).hexdigest() != reference["sha256"]:
        raise InitSourceUnavailable(f"{what} changed since this job was created (its sha256 differs)")
    return data, what


def _recorded_classes(reference: dict, data: bytes) -> int | None:
    """The source's class count: the source job's, or a TensorFleet checkpoint's metadata."""
    if reference.get("num_classes"):
        return int(reference["num_classes"])
    try:
        return int(json.loads(read_metadata(data)[CONFIG_KEY])["num_classes"])
    except (KeyError, ValueError, TypeError):
        return None


def init_weights_apply(job: Job, model: nn.Module) -> nn.Module:
    """``model`` (the job's seeded initial model) with the job's ``init_from`` weights
    loaded into it; ``model`` as it is for a job without ``init_from``."""
    reference = job.init_from
    if not reference:
        return model
    data, what = _source_bytes(reference)
    source = st_load(data)
    target = model.state_dict()
    plan = fit_plan(source, target, num_classes=job.num_classes, source_classes=_recorded_classes(reference, data))
    if not plan.fits:
        raise InitWeightsMismatch(misfit_message(what, job.model_type, plan))
    loaded = set(plan.loaded)
    merged = {name: source[name].to(here.dtype) if name in loaded else here for name, here in target.items()}
    model.load_state_dict(merged)
    return model
