"""torchvision architectures, trained from scratch (no weights are downloaded), adapted
to the dataset: the first convolution takes the input's channels, the classifier its
classes, and small images (64 pixels a side or less, e.g. 32x32) get the usual
small-image stem: a 3x3 convolution with stride 1 and, for ResNets, no max-pool, so a
32x32 image is not cut to 8x8 before the first block (``stem="imagenet"`` keeps
torchvision's own). Registered under ``tensorfleet.models`` in pyproject.toml.

Built under the caller's seeded RNG (``workers.zoo.initial_model``): the replaced
layers are initialised the way torchvision initialises its own, so two builds with
the same seed are the same weights.
"""

from __future__ import annotations

from typing import Literal

from torch import nn
from torchvision.models import efficientnet, mobilenetv3, resnet

Stem = Literal["auto", "small", "imagenet"]
SMALL_SIDE = 64


def _image_shape(name: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ValueError(f"{name} needs image inputs (channels, height, width), got shape {list(input_shape)}")
    channels, height, width = input_shape
    return channels, height, width


def _small(stem: Stem, height: int, width: int) -> bool:
    return stem == "small" or (stem == "auto" and max(height, width) <= SMALL_SIDE)


def _check_dropout(name: str, **probabilities: float) -> None:
    for key, p in probabilities.items():
        if not 0.0 <= p < 1.0:
            raise ValueError(f"{name} needs 0 <= {key} < 1, got {p}")


def _resnet(name, block, layers, input_shape, num_classes, *, stem, dropout, zero_init_residual) -> nn.Module:
    channels, height, width = _image_shape(name, input_shape)
    _check_dropout(name, dropout=dropout)
    model = resnet.ResNet(block, layers, num_classes=num_classes, zero_init_residual=zero_init_residual)
    small = _small(stem, height, width)
    if small or channels != 3:
        model.conv1 = nn.Conv2d(channels, 64, 3 if small else 7, stride=1 if small else 2, padding=1 if small else 3,
                                bias=False)  # fmt: skip
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    if small:
        model.maxpool = nn.Identity()
    if dropout > 0:
        model.fc = nn.Sequential(nn.Dropout(dropout), model.fc)
    return model


def resnet18(
    input_shape: tuple[int, ...],
    num_classes: int,
    stem: Stem = "auto",
    dropout: float = 0.0,
    zero_init_residual: bool = False,
) -> nn.Module:
    """ResNet-18 (torchvision), from scratch; dropout before the classifier when above 0."""
    return _resnet("resnet18", resnet.BasicBlock, [2, 2, 2, 2], input_shape, num_classes, stem=stem,
                   dropout=dropout, zero_init_residual=zero_init_residual)  # fmt: skip


def resnet34(
    input_shape: tuple[int, ...],
    num_classes: int,
    stem: Stem = "auto",
    dropout: float = 0.0,
    zero_init_residual: bool = False,
) -> nn.Module:
    """ResNet-34 (torchvision), from scratch; dropout before the classifier when above 0."""
    return _resnet("resnet34", resnet.BasicBlock, [3, 4, 6, 3], input_shape, num_classes, stem=stem,
                   dropout=dropout, zero_init_residual=zero_init_residual)  # fmt: skip


def _first_conv(features: nn.Sequential, channels: int, small: bool) -> None:
    """Replace the first convolution of a MobileNet or EfficientNet stem: the input's
    channels, stride 1 for small images."""
    stem = features[0]
    if not (isinstance(stem, nn.Sequential) and isinstance(stem[0], nn.Conv2d)):
        raise TypeError(f"unexpected stem {stem!r}")
    old = stem[0]
    if not small and channels == old.in_channels:
        return
    new = nn.Conv2d(channels, old.out_channels, 3, stride=1 if small else 2, padding=1, bias=False)
    nn.init.kaiming_normal_(new.weight, mode="fan_out")
    stem[0] = new


def mobilenet_v3_small(
    input_shape: tuple[int, ...],
    num_classes: int,
    width_mult: float = 1.0,
    dropout: float = 0.2,
    stem: Stem = "auto",
) -> nn.Module:
    """MobileNetV3-Small (torchvision), from scratch; ``width_mult`` scales every layer's channels."""
    channels, height, width = _image_shape("mobilenet_v3_small", input_shape)
    _check_dropout("mobilenet_v3_small", dropout=dropout)
    if not 0.0 < width_mult <= 4.0:
        raise ValueError(f"mobilenet_v3_small needs 0 < width_mult <= 4, got {width_mult}")
    setting, last_channel = mobilenetv3._mobilenet_v3_conf("mobilenet_v3_small", width_mult=width_mult)
    model = mobilenetv3.MobileNetV3(setting, last_channel, num_classes=num_classes, dropout=dropout)
    _first_conv(model.features, channels, _small(stem, height, width))
    return model


def efficientnet_b0(
    input_shape: tuple[int, ...],
    num_classes: int,
    width_mult: float = 1.0,
    depth_mult: float = 1.0,
    dropout: float = 0.2,
    stochastic_depth_prob: float = 0.2,
    stem: Stem = "auto",
) -> nn.Module:
    """EfficientNet-B0 (torchvision), from scratch; ``width_mult`` and ``depth_mult`` scale
    its channels and its blocks' repeats (B1-B7 are B0 scaled this way, with larger images)."""
    channels, height, width = _image_shape("efficientnet_b0", input_shape)
    _check_dropout("efficientnet_b0", dropout=dropout, stochastic_depth_prob=stochastic_depth_prob)
    if not (0.0 < width_mult <= 4.0 and 0.0 < depth_mult <= 4.0):
        raise ValueError(f"efficientnet_b0 needs 0 < width_mult, depth_mult <= 4, got {width_mult}, {depth_mult}")
    setting, last_channel = efficientnet._efficientnet_conf(
        "efficientnet_b0", width_mult=width_mult, depth_mult=depth_mult
    )
    model = efficientnet.EfficientNet(
        setting, dropout, stochastic_depth_prob=stochastic_depth_prob, num_classes=num_classes,
        last_channel=last_channel,
    )  # fmt: skip
    _first_conv(model.features, channels, _small(stem, height, width))
    return model


# The input each takes (workers.plugins): images, channels first.
resnet18.input_kind = "images"  # type: ignore[attr-defined]
resnet34.input_kind = "images"  # type: ignore[attr-defined]
mobilenet_v3_small.input_kind = "images"  # type: ignore[attr-defined]
efficientnet_b0.input_kind = "images"  # type: ignore[attr-defined]
