"""The model zoo. ``cnn`` and ``mlp`` are the networks of shared/bench/reference.py,
generalised to the dataset's input shape, so benchmarks compare like with like."""

from __future__ import annotations

import math

import torch
from torch import nn

from jobs.catalog import MODEL_TYPES


def build_model(model_type: str, input_shape: list[int] | tuple[int, ...], num_classes: int) -> nn.Module:
    """A freshly initialised model; seed torch's RNG first for reproducible weights."""
    features = math.prod(input_shape)
    if model_type == "logreg":
        return nn.Sequential(nn.Flatten(), nn.Linear(features, num_classes))
    if model_type == "mlp":
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(features, 512),
            nn.ReLU(),
            nn.Linear(512, 512),
            nn.ReLU(),
            nn.Linear(512, num_classes),
        )
    if model_type == "cnn":
        if len(input_shape) != 3:
            raise ValueError(f"cnn needs image inputs (channels, height, width), got shape {list(input_shape)}")
        channels, height, width = input_shape
        return nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * (height // 2) * (width // 2), 128),
            nn.ReLU(),
            nn.Linear(128, num_classes),
        )
    raise ValueError(f"unknown model type {model_type!r}; choose one of {', '.join(MODEL_TYPES)}")


def initial_model(model_type: str, input_shape, num_classes: int, *, seed: int) -> nn.Module:
    """The job's starting weights: the same on every worker for the same seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model(model_type, input_shape, num_classes)
