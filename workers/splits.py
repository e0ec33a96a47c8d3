"""Datasets a job trains on, the job's train/validation split, and shard slices.

Built-ins are made on the CPU from a generator seeded by the job's seed; uploaded
datasets are fetched once into the worker's cache folder (checked by sha256).
Either way every worker gets the same tensors, and each worker process keeps the
loaded splits in memory and reuses them across tasks.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from storage_app.builtin_datasets import (
    BUILTIN_DATASETS,
    SHAPES_DEFAULT_SIZE,
    SYNTHETIC_CLASSES,
    SYNTHETIC_DEFAULT_SIZE,
    SYNTHETIC_FEATURES,
)

VALIDATION_FRACTION = 0.2  # the default of a spec's ``validation`` (jobs.validation_sets)


@dataclass(frozen=True)
class Split:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    @property
    def input_shape(self) -> list[int]:
        return list(self.x_train.shape[1:])


def _sklearn(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn import datasets as skd

    if name == "digits":
        d = skd.load_digits()
        x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
        return x, torch.tensor(d.target, dtype=torch.long)
    loader = {"iris": skd.load_iris, "wine": skd.load_wine, "breast_cancer": skd.load_breast_cancer}[name]
    d = loader()
    return torch.tensor(d.data, dtype=torch.float32), torch.tensor(d.target, dtype=torch.long)


def _synthetic(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    # The same construction as shared/bench/reference.py's synth-mlp workload.
    dim = SYNTHETIC_FEATURES
    x = torch.randn(n, dim, generator=g)
    teacher = nn.Sequential(nn.Linear(dim, 64), nn.Tanh(), nn.Linear(64, SYNTHETIC_CLASSES))
    with torch.no_grad():
        for p in teacher.parameters():  # unit-variance pre-activations
            p.copy_(torch.randn(p.shape, generator=g) / (p.shape[-1] ** 0.5 if p.dim() > 1 else 1.0))
        y = teacher(x).argmax(1)
    return x, y


def _shapes(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-sized images, built as shared/bench/reference.py's shapes-resnet workload
    builds them (same generator draws, so the same tensors for the same seed): each a
    shifted, contrast-jittered, noisy copy of its class's smooth random pattern."""
    classes = 10
    proto = nn.functional.interpolate(
        torch.randn(classes, 3, 4, 4, generator=g), size=(32, 32), mode="bilinear", align_corners=False
    )
    proto = (proto - proto.mean((1, 2, 3), keepdim=True)) / proto.std((1, 2, 3), keepdim=True)
    y = torch.randint(0, classes, (n,), generator=g)
    shifts = torch.randint(-4, 5, (n, 2), generator=g)
    contrast = 0.5 + torch.rand(n, generator=g)
    x = torch.stack(
        [torch.roll(proto[c], (int(a), int(b)), dims=(1, 2)) for c, (a, b) in zip(y.tolist(), shifts, strict=True)]
    )
    x = x * contrast.view(-1, 1, 1, 1) + 2.5 * torch.randn(x.shape, generator=g)
    return x, y


def _standardised(x_train: torch.Tensor, x_val: torch.Tensor, standardise: bool):
    """Tabular features on very different scales, standardised by the training split's statistics."""
    if not standardise:
        return x_train, x_val
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
    return (x_train - mean) / std, (x_val - mean) / std


def split_fraction(
    x: torch.Tensor, y: torch.Tensor, g: torch.Generator, *, standardise: bool, fraction: float = VALIDATION_FRACTION
) -> Split:
    """A permutation drawn from ``g``: the first 1 - ``fraction`` of it trains, the rest
    validates (0.2, the default, is the 80/20 split every job had before it could choose)."""
    perm = torch.randperm(len(x), generator=g)
    cut = int((1 - fraction) * len(x))
    if not 0 < cut < len(x):
        raise ValueError(f"a validation fraction of {fraction} leaves nothing to train or validate on of {len(x)}")
    tr, va = perm[:cut], perm[cut:]
    x_train, x_val = _standardised(x[tr], x[va], standardise)
    return Split(x_train.contiguous(), y[tr].contiguous(), x_val.contiguous(), y[va].contiguous())


def split_with(
    x: torch.Tensor, y: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, g: torch.Generator, *, standardise: bool
) -> Split:
    """All of (x, y) trains, in an order drawn from ``g``; another dataset validates."""
    if x_val.shape[1:] != x.shape[1:]:
        raise ValueError(f"validation samples of shape {list(x_val.shape[1:])}; training ones are {list(x.shape[1:])}")
    perm = torch.randperm(len(x), generator=g)
    x_train, x_val = _standardised(x[perm], x_val, standardise)
    return Split(x_train.contiguous(), y[perm].contiguous(), x_val.contiguous(), y_val.contiguous())


def _builtin_arrays(name: str, g: torch.Generator, size: int | None) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """A built-in's samples (synthetic ones drawn from ``g``) and whether to standardise them."""
    if name not in BUILTIN_DATASETS:
        raise ValueError(f"unknown dataset {name!r}")
    if name == "synthetic":
        return (*_synthetic(size or SYNTHETIC_DEFAULT_SIZE, g), False)
    if name == "synthetic-shapes":
        return (*_shapes(size or SHAPES_DEFAULT_SIZE, g), False)
    return (*_sklearn(name), not BUILTIN_DATASETS[name].is_image)


def build_split(name: str, *, seed: int, size: int | None = None, fraction: float = VALIDATION_FRACTION) -> Split:
    """A built-in dataset, split by ``seed``."""
    g = torch.Generator().manual_seed(seed)
    x, y, standardise = _builtin_arrays(name, g, size)
    return split_fraction(x, y, g, standardise=standardise, fraction=fraction)


_CACHE: OrderedDict[tuple, Split] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_ENTRIES = 4


def _memoised(key: tuple, build: Callable[[], Split]) -> Split:
    """Per-process cache of a few splits, least recently used out."""
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    split = build()
    with _CACHE_LOCK:
        _CACHE[key] = split
        while len(_CACHE) > _CACHE_ENTRIES:
            _CACHE.popitem(last=False)
    return split


def cached_split(name: str, *, seed: int, size: int | None = None, fraction: float = VALIDATION_FRACTION) -> Split:
    return _memoised((name, seed, size, fraction), lambda: build_split(name, seed=seed, size=size, fraction=fraction))


def _local_copy(dataset) -> Path:
    """The dataset's file in this worker's cache folder, fetched once and checked by sha256."""
    from django.conf import settings

    from storage_app.blobs import storage_errors
    from storage_app.checksums import ChecksumMismatch, copy_verified
    from storage_app.datasets import EXTENSIONS

    cache = Path(settings.STATE_DIR) / "cache" / "datasets"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{dataset.sha256}.{EXTENSIONS[dataset.format]}"
    if path.exists():
        return path
    try:
        with storage_errors(), dataset.file.open("rb") as src:
            copy_verified(src, path, sha256=dataset.sha256)
    except ChecksumMismatch as exc:
        raise ValueError(f"dataset {dataset.id}: stored bytes do not match: {exc}") from None
    return path


def _uploaded_arrays(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    from storage_app.formats import load_file

    x, y = load_file(_local_copy(dataset), dataset.format, dataset.label_column or "label")
    return torch.from_numpy(x.copy()), torch.from_numpy(y.copy())


def uploaded_split(dataset, *, seed: int, fraction: float = VALIDATION_FRACTION) -> Split:
    """An uploaded dataset, split by ``seed`` like the built-ins."""

    def build() -> Split:
        x, y = _uploaded_arrays(dataset)
        g = torch.Generator().manual_seed(seed)
        return split_fraction(x, y, g, standardise=not dataset.is_image, fraction=fraction)

    return _memoised(("sha256:" + dataset.sha256, seed, dataset.label_column, fraction), build)


def _validated_split(job) -> Split:
    """The job's whole dataset trains, its validation dataset validates."""
    g = torch.Generator().manual_seed(job.seed)
    if job.dataset_ref_id:
        x, y = _uploaded_arrays(job.dataset_ref)
        standardise = not job.dataset_ref.is_image
    else:
        x, y, standardise = _builtin_arrays(job.dataset, g, job.dataset_size)
    x_val, y_val = _uploaded_arrays(job.validation_ref)
    return split_with(x, y, x_val, y_val, g, standardise=standardise)


def job_split(job) -> Split:
    """The split a job trains on: a built-in or its uploaded dataset, with the fraction
    its spec holds out, or the whole of it against its validation dataset."""
    if job.dataset_sha256 and not job.dataset_ref_id:
        raise ValueError(f"the dataset {job.dataset!r} this job used has been deleted")
    if job.validation_sha256:
        if not job.validation_ref_id:
            raise ValueError("the validation dataset this job used has been deleted")
        train = ("sha256:" + job.dataset_sha256, job.dataset_ref.label_column) if job.dataset_ref_id else (job.dataset,)
        key = (*train, job.seed, job.dataset_size, "validation", job.validation_sha256, job.validation_ref.label_column)
        return _memoised(key, lambda: _validated_split(job))
    if job.dataset_ref_id:
        return uploaded_split(job.dataset_ref, seed=job.seed, fraction=job.validation_fraction)
    return cached_split(job.dataset, seed=job.seed, size=job.dataset_size, fraction=job.validation_fraction)


def shard_of(x: torch.Tensor, y: torch.Tensor, shard: int, shards: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Shard ``shard`` of ``shards``: every shards-th training sample, starting at ``shard``."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is outside 0..{shards - 1}")
    return x[shard::shards], y[shard::shards]
