"""The built-in models, and the two functions every worker builds a model with.

``logreg``, ``mlp`` and ``cnn`` are builders like any plugin's, registered under the
entry-point group ``tensorfleet.models`` in pyproject.toml (``workers.plugins``).
``cnn`` and ``mlp`` are the networks of shared/bench/reference.py, generalised to the
dataset's input shape, so benchmarks compare like with like. At their defaults they
are the same modules in the same order as before they took arguments, so a job's
weights (and its checkpoint's sha256) are what they were.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from workers import plugins


def logreg(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Multinomial logistic regression on the flattened input."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


def mlp(input_shape: tuple[int, ...], num_classes: int, hidden: int = 512, dropout: float = 0.0) -> nn.Module:
    """Two hidden ReLU layers of ``hidden`` units on the flattened input, dropout after each when above 0."""
    if hidden < 1 or not 0.0 <= dropout < 1.0:
        raise ValueError(f"mlp needs hidden >= 1 and 0 <= dropout < 1, got hidden={hidden}, dropout={dropout}")
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(input_shape)
    for _ in range(2):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        if dropout > 0:  # no module at 0, so the default's state_dict keys stay as they were
            layers.append(nn.Dropout(dropout))
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, num_classes))


def cnn(input_shape: tuple[int, ...], num_classes: int, width: int = 32, dropout: float = 0.0) -> nn.Module:
    """Two 3x3 convolutions (``width``, then 2 x ``width`` channels), a 2x2 max-pool and a
    hidden layer of 4 x ``width`` units; dropout before the last layer when above 0."""
    if len(input_shape) != 3:
        raise ValueError(f"cnn needs image inputs (channels, height, width), got shape {list(input_shape)}")
    if width < 1 or not 0.0 <= dropout < 1.0:
        raise ValueError(f"cnn needs width >= 1 and 0 <= dropout < 1, got width={width}, dropout={dropout}")
    channels, height, wide = input_shape
    # Modules are made in the order they run: each draws its initial weights from the seeded RNG in turn.
    layers: list[nn.Module] = [
        nn.Conv2d(channels, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * (height // 2) * (wide // 2), 4 * width),
        nn.ReLU(),
    ]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, nn.Linear(4 * width, num_classes))


cnn.input_kind = "images"  # type: ignore[attr-defined]


def build_model(
    model_type: str, input_shape: Sequence[int], num_classes: int, model_args: dict | None = None
) -> nn.Module:
    """A freshly initialised model from the plugins (built-ins included); seed torch's RNG first for reproducible weights."""
    return plugins.build(model_type, input_shape, num_classes, model_args)


def initial_model(
    model_type: str, input_shape: Sequence[int], num_classes: int, *, seed: int, model_args: dict | None = None
) -> nn.Module:
    """The job's starting weights: the same on every worker for the same seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(model_type, input_shape, num_classes, model_args)
