"""TinyNet: a small network for images or tabular features, as a TensorFleet plugin.

``build`` is the entry point (pyproject.toml). TensorFleet reads its signature: every
argument after ``input_shape`` and ``num_classes`` is a ``model_args`` key a job may
give, with the annotation as its type and the default as its default.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class TinyNet(nn.Module):
    """Images: a 3x3 convolution with ``channels`` filters, pooled to 4x4. Tabular: the
    features as they are. Then one hidden layer and the classifier."""

    def __init__(self, input_shape, num_classes, *, hidden, dropout, channels, activation):
        super().__init__()
        if len(input_shape) == 3:
            self.features = nn.Sequential(
                nn.Conv2d(input_shape[0], channels, 3, padding=1),
                ACTIVATIONS[activation](),
                nn.AdaptiveAvgPool2d(4),
                nn.Flatten(),
            )
            width = channels * 16
        else:
            self.features = nn.Flatten()
            width = math.prod(input_shape)
        self.head = nn.Sequential(
            nn.Linear(width, hidden),
            ACTIVATIONS[activation](),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def build(
    input_shape: tuple[int, ...],
    num_classes: int,
    hidden: int = 64,
    dropout: float = 0.0,
    channels: int = 16,
    activation: Literal["relu", "gelu", "tanh"] = "relu",
) -> nn.Module:
    """TinyNet: a small ConvNet for images, an MLP for tabular features."""
    if hidden < 1 or channels < 1 or not 0.0 <= dropout < 1.0:
        raise ValueError("TinyNet needs hidden >= 1, channels >= 1 and 0 <= dropout < 1")
    return TinyNet(input_shape, num_classes, hidden=hidden, dropout=dropout, channels=channels, activation=activation)


build.input_kind = "any"  # "images", "tabular" or "any": which datasets a job may pair it with
