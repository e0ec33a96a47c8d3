"""The model zoo: the built-ins unchanged by the plugin path, torchvision's architectures
adapted to the dataset, seeded, taking their model_args, and a ResNet-18 that learns."""

from __future__ import annotations

import hashlib
import time

import pytest
import torch
from torch import nn

from workers import plugins
from workers.training import evaluate, shard_generator, train_epoch
from workers.zoo import build_model, initial_model

VISION = ("resnet18", "resnet34", "mobilenet_v3_small", "efficientnet_b0")


def state_sha(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize(
    "name, shape, classes, sha",
    [  # computed with workers/zoo.py as it was before models came from entry points (commit 68bb860)
        ("logreg", (4,), 3, "d8d9b7fcca58d09a920ae1e787071eaff87248df0890a36668c3ddbd836c904e"),
        ("mlp", (64,), 10, "e3be179f6c0c4fd958a49c73a21d63c1f5987c1e1521e75fc6793ec88b2ab1b9"),
        ("cnn", (1, 8, 8), 10, "035226b572f206c380c94136551f066f496a68143edfeffacc256ef6ffe0d9db"),
    ],
)
def test_the_built_ins_at_their_defaults_start_from_the_same_weights_as_before(name, shape, classes, sha):
    assert state_sha(initial_model(name, shape, classes, seed=0)) == sha


def test_every_zoo_model_is_registered_by_the_project():
    entries = plugins.entries()
    for name in ("logreg", "mlp", "cnn", *VISION):
        assert entries[name].source.startswith("tensorfleet "), entries[name].source
    assert {entries[name].input_kind for name in VISION} == {"images"}
    assert entries["mlp"].input_kind == "any" and entries["cnn"].input_kind == "images"


@pytest.mark.parametrize("name", VISION)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_zoo_models_build_for_the_dataset_and_are_seeded(name, shape):
    first = initial_model(name, shape, 7, seed=3)
    again = initial_model(name, shape, 7, seed=3)
    other = initial_model(name, shape, 7, seed=4)
    assert state_sha(first) == state_sha(again)
    assert state_sha(first) != state_sha(other)
    first.eval()
    with torch.no_grad():
        assert first(torch.rand(2, *shape)).shape == (2, 7)
    conv = next(m for m in first.modules() if isinstance(m, nn.Conv2d))
    assert conv.in_channels == shape[0]
    assert conv.stride == (1, 1) and conv.kernel_size == (3, 3)  # the small-image stem


def test_resnets_take_the_small_image_stem_unless_told_otherwise():
    small = build_model("resnet18", (3, 32, 32), 10)
    assert isinstance(small.maxpool, nn.Identity) and small.conv1.kernel_size == (3, 3)
    imagenet = build_model("resnet18", (3, 32, 32), 10, {"stem": "imagenet"})
    assert isinstance(imagenet.maxpool, nn.MaxPool2d) and imagenet.conv1.kernel_size == (7, 7)
    assert build_model("resnet34", (1, 96, 96), 10).conv1.kernel_size == (7, 7)  # large images: torchvision's
    assert build_model("resnet34", (1, 96, 96), 10).conv1.in_channels == 1


def test_model_args_reach_the_constructors():
    def params(model):
        return sum(p.numel() for p in model.parameters())

    assert params(build_model("mobilenet_v3_small", (3, 32, 32), 10, {"width_mult": 0.5})) < params(
        build_model("mobilenet_v3_small", (3, 32, 32), 10)
    )
    assert build_model("mobilenet_v3_small", (3, 32, 32), 10, {"dropout": 0.5}).classifier[2].p == 0.5
    efficient = build_model("efficientnet_b0", (3, 32, 32), 10, {"dropout": 0.3, "stochastic_depth_prob": 0.1})
    assert efficient.classifier[0].p == 0.3
    assert params(build_model("efficientnet_b0", (3, 32, 32), 10, {"width_mult": 0.5, "depth_mult": 0.5})) < params(
        efficient
    )
    resnet = build_model("resnet18", (3, 32, 32), 10, {"dropout": 0.2, "zero_init_residual": True})
    assert isinstance(resnet.fc[0], nn.Dropout) and resnet.fc[0].p == 0.2
    assert torch.count_nonzero(resnet.layer1[0].bn2.weight) == 0
    assert build_model("mlp", (4,), 3, {"hidden": 16})[1].out_features == 16
    assert build_model("cnn", (1, 8, 8), 3, {"width": 8})[0].out_channels == 8


def test_bad_model_args_are_refused_by_the_worker_too():
    with pytest.raises(plugins.ModelArgsInvalid, match="'stem'"):
        build_model("resnet18", (3, 32, 32), 10, {"stem": "huge"})
    with pytest.raises(plugins.ModelArgsInvalid, match="'width'"):
        build_model("resnet18", (3, 32, 32), 10, {"width": 2})
    with pytest.raises(ValueError, match="needs image inputs"):
        build_model("resnet18", (4,), 3)


def coloured_squares(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """32x32 RGB noise with a 12x12 square brighter in the channel of its class (3 classes),
    at a random place."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, 32, 32, generator=g) * 0.5
    y = torch.arange(n) % 3
    for i in range(n):
        top, left = torch.randint(0, 20, (2,), generator=g).tolist()
        x[i, y[i], top : top + 12, left : left + 12] += 0.5
    return x, y


def test_resnet18_learns_small_rgb_images_in_two_epochs():
    """The platform's own loop (workers.training) on 96 generated images, 2 epochs.
    Measured here (2 busy cores): 0.67 validation accuracy (chance: 0.33) in about 30 s."""
    x, y = coloured_squares(96, seed=0)
    x_val, y_val = coloured_squares(60, seed=1)
    model = initial_model("resnet18", (3, 32, 32), 3, seed=0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    started = time.monotonic()
    losses = [
        train_epoch(model, optimizer, x, y, batch_size=8, generator=shard_generator(0, epoch, 0)).train_loss
        for epoch in (1, 2)
    ]
    _, accuracy = evaluate(model, x_val, y_val)
    print(f"resnet18, 96 images x 2 epochs: val accuracy {accuracy:.3f} in {time.monotonic() - started:.1f} s")
    assert losses[1] < losses[0]
    assert accuracy > 0.5
