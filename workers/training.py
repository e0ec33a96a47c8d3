"""One shard's epoch of training: the arithmetic, nothing about storage or Celery."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from jobs.catalog import OPTIMIZERS


class TrainingStopped(Exception):
    """The job was cancelled while this shard trained."""


class LossNotFinite(ArithmeticError):
    """The training loss became NaN or infinite: every step after it is wasted."""

    def __init__(self, value: float):
        super().__init__(f"loss became {finite_name(value)}")
        self.value = value


def finite_name(value: float) -> str:
    """How a non-finite number is named in a job's error: NaN, inf or -inf."""
    return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def first_non_finite(state: Mapping[str, torch.Tensor]) -> str | None:
    """The name of the first floating tensor holding a NaN or an infinity, else None."""
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


@dataclass(frozen=True)
class EpochResult:
    samples: int
    train_loss: float


def make_optimizer(name: str, params, *, lr: float, momentum: float = 0.0) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def shard_generator(seed: int, epoch: int, shard: int) -> torch.Generator:
    """The data order of one shard in one epoch, drawn from (seed, epoch, shard) alone."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 10_007 + shard)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    generator: torch.Generator,
    should_stop: Callable[[], bool] | None = None,
    check_every_s: float = 1.0,
) -> EpochResult:
    """Shuffle with ``generator`` and take one optimiser step per mini-batch.

    ``x`` and ``y`` already live on the model's device. ``should_stop`` is asked
    about once every ``check_every_s`` seconds; when it says yes, TrainingStopped.
    A loss that became NaN or infinite raises LossNotFinite, checked at the same
    moments and at the end (a NaN stays in the running sum, so nothing is missed,
    and the device is not synchronised once per batch to look).
    """
    model.train()
    n = len(x)
    perm = torch.randperm(n, generator=generator).to(x.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    next_check = time.monotonic() + check_every_s
    for start in range(0, n, batch_size):
        idx = perm[start : start + batch_size]
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(idx)
        if time.monotonic() >= next_check:
            if not bool(torch.isfinite(loss_sum)):
                raise LossNotFinite(float(loss_sum.item()))
            if should_stop is not None and should_stop():
                raise TrainingStopped()
            next_check = time.monotonic() + check_every_s
    mean = float(loss_sum.item() / max(n, 1))
    if not math.isfinite(mean):
        raise LossNotFinite(mean)
    return EpochResult(samples=n, train_loss=mean)


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 8192) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on (x, y)."""
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            logits = model(xb)
            loss_sum += F.cross_entropy(logits, yb, reduction="sum").item()
            correct += int((logits.argmax(1) == yb).sum().item())
    n = max(len(x), 1)
    return loss_sum / n, correct / n
