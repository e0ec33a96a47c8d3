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

from storage_app.builtin_datasets import BUILTIN_DATASETS, SYNTHETIC_CLASSES, SYNTHETIC_DEFAULT_SIZE, SYNTHETIC_FEATURES

VALIDATION_FRACTION = 0.2


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


def split_80_20(x: torch.Tensor, y: torch.Tensor, g: torch.Generator, *, standardise: bool) -> Split:
    """A permutation drawn from ``g``: 80% train, 20% validation. Tabular features on
    very different scales are standardised by the training split's statistics."""
    perm = torch.randperm(len(x), generator=g)
    cut = int((1 - VALIDATION_FRACTION) * len(x))
    tr, va = perm[:cut], perm[cut:]
    x_train, x_val = x[tr], x[va]
    if standardise:
        mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
        x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    return Split(x_train.contiguous(), y[tr].contiguous(), x_val.contiguous(), y[va].contiguous())


def build_split(name: str, *, seed: int, size: int | None = None) -> Split:
    """A built-in dataset, split by ``seed``."""
    if name not in BUILTIN_DATASETS:
        raise ValueError(f"unknown dataset {name!r}")
    g = torch.Generator().manual_seed(seed)
    if name == "synthetic":
        x, y = _synthetic(size or SYNTHETIC_DEFAULT_SIZE, g)
        return split_80_20(x, y, g, standardise=False)
    x, y = _sklearn(name)
    return split_80_20(x, y, g, standardise=not BUILTIN_DATASETS[name].is_image)


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


def cached_split(name: str, *, seed: int, size: int | None = None) -> Split:
    return _memoised((name, seed, size), lambda: build_split(name, seed=seed, size=size))


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


def uploaded_split(dataset, *, seed: int) -> Split:
    """An uploaded dataset, split by ``seed`` like the built-ins."""
    from storage_app.formats import load_file

    def build() -> Split:
        x, y = load_file(_local_copy(dataset), dataset.format, dataset.label_column or "label")
        g = torch.Generator().manual_seed(seed)
        return split_80_20(torch.from_numpy(x.copy()), torch.from_numpy(y.copy()), g, standardise=not dataset.is_image)

    return _memoised(("sha256:" + dataset.sha256, seed, dataset.label_column), build)


def job_split(job) -> Split:
    """The split a job trains on: a built-in or its uploaded dataset."""
    if job.dataset_ref_id:
        return uploaded_split(job.dataset_ref, seed=job.seed)
    if job.dataset_sha256:
        raise ValueError(f"the dataset {job.dataset!r} this job used has been deleted")
    return cached_split(job.dataset, seed=job.seed, size=job.dataset_size)


def shard_of(x: torch.Tensor, y: torch.Tensor, shard: int, shards: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Shard ``shard`` of ``shards``: every shards-th training sample, starting at ``shard``."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is outside 0..{shards - 1}")
    return x[shard::shards], y[shard::shards]
