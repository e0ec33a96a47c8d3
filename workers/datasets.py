"""Built-in datasets, the job's train/validation split, and shard slices.

Data is built on the CPU from a generator seeded by the job's seed, so every
worker gets the same tensors. Workers keep loaded splits in memory (keyed by
dataset, size and seed) and reuse them across tasks.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from workers.catalog import BUILTIN_DATASETS, SYNTHETIC_CLASSES, SYNTHETIC_DEFAULT_SIZE, SYNTHETIC_FEATURES

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


def build_split(name: str, *, seed: int, size: int | None = None) -> Split:
    """Load a built-in dataset and split it 80/20 with a permutation drawn from ``seed``."""
    if name not in BUILTIN_DATASETS:
        raise ValueError(f"unknown dataset {name!r}")
    g = torch.Generator().manual_seed(seed)
    if name == "synthetic":
        x, y = _synthetic(size or SYNTHETIC_DEFAULT_SIZE, g)
    else:
        x, y = _sklearn(name)
    perm = torch.randperm(len(x), generator=g)
    cut = int((1 - VALIDATION_FRACTION) * len(x))
    tr, va = perm[:cut], perm[cut:]
    x_train, x_val = x[tr], x[va]
    if not BUILTIN_DATASETS[name].is_image and name != "synthetic":
        # Tabular features on very different scales: standardise by the training split.
        mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
        x_train, x_val = (x_train - mean) / std, (x_val - mean) / std
    return Split(x_train.contiguous(), y[tr].contiguous(), x_val.contiguous(), y[va].contiguous())


_CACHE: OrderedDict[tuple, Split] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_ENTRIES = 4


def cached_split(name: str, *, seed: int, size: int | None = None) -> Split:
    """``build_split`` memoised per worker process (a few entries, least recently used out)."""
    key = (name, seed, size)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    split = build_split(name, seed=seed, size=size)
    with _CACHE_LOCK:
        _CACHE[key] = split
        while len(_CACHE) > _CACHE_ENTRIES:
            _CACHE.popitem(last=False)
    return split


def shard_of(x: torch.Tensor, y: torch.Tensor, shard: int, shards: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Shard ``shard`` of ``shards``: every shards-th training sample, starting at ``shard``."""
    if not 0 <= shard < shards:
        raise ValueError(f"shard {shard} is outside 0..{shards - 1}")
    return x[shard::shards], y[shard::shards]
