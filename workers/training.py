"""One shard's epoch of training: the arithmetic, nothing about storage or Celery.

The recipe of a plain PyTorch script is built from torch's own pieces: the optimiser
(``make_optimizer``), the LR schedule (``make_scheduler``: torch.optim.lr_scheduler),
label smoothing (CrossEntropyLoss), gradient clipping (clip_grad_norm_), mixed
precision (torch.autocast, GradScaler for fp16) and image augmentation
(torchvision.transforms.v2, ``augment_images``).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim import lr_scheduler
from torchvision.transforms import v2

from jobs.catalog import LR_SCHEDULES, OPTIMIZERS, PRECISIONS

# Zero padding before the random crop: 4 pixels at 32 x 32 (the CIFAR recipe), an eighth
# of the side in general (4 pixels would leave half of an 8 x 8 digit out of the frame:
# measured, digits' cnn stayed at chance after 4 epochs; 1 pixel: it learns).
AUGMENT_PADDING_FRACTION = 1 / 8
STEP_DECAYS = 3  # the "step" schedule multiplies the LR by STEP_GAMMA every 1/3 of the epochs after warmup
STEP_GAMMA = 0.1
ONE_CYCLE_DEFAULT_WARMUP = 0.3  # torch's pct_start, when the spec gives no warmup_epochs


class TrainingStopped(Exception):
    """The job was cancelled while this shard trained."""


class PrecisionUnavailable(ValueError):
    """The job asks for a precision this worker cannot train in (fp16 without a GPU)."""


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


@dataclass(frozen=True)
class Recipe:
    """How each optimiser step is taken besides the optimiser itself. The defaults are
    today's plain step: no schedule, no clipping, no smoothing, float32."""

    label_smoothing: float = 0.0
    grad_clip_norm: float | None = None
    scheduler: lr_scheduler.LRScheduler | None = None  # stepped after every optimiser step
    autocast: torch.dtype | None = None  # mixed precision's dtype; None: float32
    scaler: torch.amp.GradScaler | None = None  # fp16 on CUDA: loss scaling


def make_optimizer(
    name: str, params, *, lr: float, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False
) -> torch.optim.Optimizer:
    """torch's Adam, AdamW (decoupled weight decay) or SGD (momentum, Nesterov)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    *,
    schedule: str,
    lr: float,
    epochs: int,
    warmup_epochs: int = 0,
    steps_per_epoch: int,
) -> lr_scheduler.LRScheduler | None:
    """torch's scheduler for a job's LR schedule, stepped once per optimiser step over
    every epoch of the job (``epochs * steps_per_epoch`` steps in all). None: the LR
    stays as it is (``constant`` without warmup).

    * warmup: LinearLR from lr / (W + 1) up to lr over the W steps of ``warmup_epochs``,
      then the schedule (SequentialLR);
    * ``step``: StepLR, x0.1 every third of the epochs after warmup;
    * ``cosine``: CosineAnnealingLR down to 0 at the last step;
    * ``one_cycle``: OneCycleLR with max_lr = lr, whose own rise (pct_start) is the
      warmup (torch's 0.3 without one); momentum is not cycled, the spec's holds.
    """
    steps_per_epoch = max(1, steps_per_epoch)
    total, warmup = epochs * steps_per_epoch, warmup_epochs * steps_per_epoch
    if schedule == "one_cycle":
        # The rise ends at step W, as a LinearLR warmup does; OneCycleLR needs 2 steps at
        # least before its peak and one after it (else it divides by zero).
        rise = min(warmup + 1, total - 1) / total if warmup and total >= 3 else ONE_CYCLE_DEFAULT_WARMUP
        return lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total, pct_start=rise, cycle_momentum=False)
    main: lr_scheduler.LRScheduler | None
    if schedule == "cosine":
        main = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total - warmup))
    elif schedule == "step":
        every = max(1, (epochs - warmup_epochs) // STEP_DECAYS) * steps_per_epoch
        main = lr_scheduler.StepLR(optimizer, step_size=every, gamma=STEP_GAMMA)
    elif schedule == "constant":
        main = None
    else:
        raise ValueError(f"unknown lr_schedule {schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
    if not warmup:
        return main
    ramp = lr_scheduler.LinearLR(optimizer, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup)
    return ramp if main is None else lr_scheduler.SequentialLR(optimizer, [ramp, main], milestones=[warmup])


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a precision on ``device``; None for float32.
    PrecisionUnavailable for fp16 without CUDA (autocast on the CPU takes bf16 only)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "fp16" and device.type != "cuda":
        raise PrecisionUnavailable(
            "precision fp16 needs a CUDA GPU and this worker has none: use bf16 or fp32, or a GPU queue"
        )
    return torch.bfloat16 if precision == "bf16" else torch.float16


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """fp16 on CUDA scales the loss so small gradients survive; nothing else needs it."""
    return torch.amp.GradScaler("cuda") if precision == "fp16" and device.type == "cuda" else None


def shard_generator(seed: int, epoch: int, shard: int) -> torch.Generator:
    """The data order of one shard in one epoch, drawn from (seed, epoch, shard) alone."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 10_007 + shard)


def augment_seed(seed: int, epoch: int, shard: int, round: int | None = None) -> int:
    """The augmentation's seed for one shard in one epoch (or one round of it, with
    ``sync_every_steps``): from (seed, epoch, shard[, round]) alone, and a stream of its
    own (not the data order's)."""
    at = f"{seed}:{epoch}:{shard}" + (f":r{round}" if round is not None else "")
    digest = hashlib.sha256(f"augment:{at}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def augment_padding(height: int, width: int) -> tuple[int, int]:
    """Pixels of padding (left and right, top and bottom) before the random crop."""
    return max(1, round(width * AUGMENT_PADDING_FRACTION)), max(1, round(height * AUGMENT_PADDING_FRACTION))


def augment_images(x: torch.Tensor, *, seed: int) -> torch.Tensor:
    """Each image of ``x`` (N, C, H, W, on the CPU) randomly cropped back to H x W from
    its zero-padded self (``augment_padding``: 4 pixels at 32 x 32), and flipped
    left-right half of the time.

    torchvision's v2 transforms, per image; they draw from torch's global CPU RNG, so
    they run in a fork of it seeded with ``seed``: the worker's own RNG is left as it
    was and the crops depend on ``seed`` alone. (Measured: about 0.15 ms an image of
    3x32x32 on one core, a few percent of a ResNet's step on the CPU.)
    """
    height, width = x.shape[-2:]
    padding = list(augment_padding(height, width))
    transform = v2.Compose([v2.RandomCrop((height, width), padding=padding), v2.RandomHorizontalFlip()])
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        return torch.stack([transform(image) for image in x]) if len(x) else x.clone()


def _step(model: nn.Module, optimizer, loss_fn, xb: torch.Tensor, yb: torch.Tensor, recipe: Recipe) -> torch.Tensor:
    """One optimiser step on one mini-batch; returns the batch's mean loss (on device)."""
    optimizer.zero_grad()
    precision = (
        torch.autocast(xb.device.type, dtype=recipe.autocast)
        if recipe.autocast is not None
        else contextlib.nullcontext()
    )
    with precision:
        loss = loss_fn(model(xb), yb)
    scaler = recipe.scaler
    if scaler is not None:
        scaler.scale(loss).backward()
    else:
        loss.backward()
    if recipe.grad_clip_norm is not None:
        if scaler is not None:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        nn.utils.clip_grad_norm_(model.parameters(), recipe.grad_clip_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    if recipe.scheduler is not None:
        recipe.scheduler.step()
    return loss.detach()


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    batch_size: int,
    generator: torch.Generator,
    recipe: Recipe | None = None,
    should_stop: Callable[[], bool] | None = None,
    check_every_s: float = 1.0,
    shuffle: bool = True,
) -> EpochResult:
    """Shuffle with ``generator`` (``shuffle=False``: keep the order given, a round's
    samples already in their epoch's order) and take one optimiser step per mini-batch.

    ``x`` and ``y`` already live on the model's device. ``should_stop`` is asked
    about once every ``check_every_s`` seconds; when it says yes, TrainingStopped.
    A loss that became NaN or infinite raises LossNotFinite, checked at the same
    moments and at the end (a NaN stays in the running sum, so nothing is missed,
    and the device is not synchronised once per batch to look).
    """
    recipe = recipe or Recipe()
    loss_fn = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    model.train()
    n = len(x)
    perm = (torch.randperm(n, generator=generator) if shuffle else torch.arange(n)).to(x.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    next_check = time.monotonic() + check_every_s
    # A model's dropout (mlp's, torchvision's, a plugin's) draws from torch's global RNG: in a
    # fork of it seeded from the shard's generator, after its permutation, it depends on
    # (seed, epoch, shard) alone and not on what the worker process ran before.
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
        for start in range(0, n, batch_size):
            idx = perm[start : start + batch_size]
            loss_sum += _step(model, optimizer, loss_fn, x[idx], y[idx], recipe) * len(idx)
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
    """Mean cross-entropy and accuracy on (x, y). (The aggregate step uses
    ``workers.evaluation``, which adds per-class accuracy and the confusion matrix.)"""
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            logits = model(xb)
            loss_sum += torch.nn.functional.cross_entropy(logits, yb, reduction="sum").item()
            correct += int((logits.argmax(1) == yb).sum().item())
    n = max(len(x), 1)
    return loss_sum / n, correct / n
