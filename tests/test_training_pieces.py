"""The arithmetic: averaging, shards, determinism, safetensors round trips."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from workers.averaging import weighted_average
from workers.splits import build_split, shard_of
from workers.training import evaluate, make_optimizer, shard_generator, train_epoch
from workers.weights import (
    bytes_to_state,
    checkpoint_bytes,
    load_checkpoint,
    optimizer_from_bytes,
    optimizer_to_bytes,
    read_metadata,
    state_to_bytes,
)
from workers.zoo import build_model, initial_model


def test_average_is_the_sample_weighted_mean():
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(5)}
    b = {"w": torch.tensor([4.0, 8.0]), "n": torch.tensor(7)}
    out = weighted_average([a, b], [1, 3])
    assert torch.allclose(out["w"], torch.tensor([(1 + 3 * 4) / 4, (2 + 3 * 8) / 4]))
    assert out["n"].item() == 5  # integer counters come from the first shard


def test_equal_weights_give_the_plain_mean():
    states = [{"w": torch.randn(3, 3)} for _ in range(4)]
    out = weighted_average(states, [10, 10, 10, 10])
    assert torch.allclose(out["w"], torch.stack([s["w"] for s in states]).mean(0), atol=1e-6)


@pytest.mark.parametrize("weights", [[], [0, 0]])
def test_averaging_rejects_nothing_to_weigh(weights):
    with pytest.raises(ValueError):
        weighted_average([{"w": torch.ones(1)}] * len(weights), weights)


def test_shards_partition_the_training_split():
    split = build_split("digits", seed=0)
    assert len(split.x_train) == 1437 and len(split.x_val) == 360
    parts = [shard_of(split.x_train, split.y_train, s, 3) for s in range(3)]
    assert sum(len(x) for x, _ in parts) == len(split.x_train)
    assert torch.equal(parts[1][0], split.x_train[1::3])
    with pytest.raises(ValueError):
        shard_of(split.x_train, split.y_train, 3, 3)


def test_split_depends_on_the_seed():
    a, b = build_split("iris", seed=0), build_split("iris", seed=1)
    assert torch.equal(build_split("iris", seed=0).x_train, a.x_train)
    assert not torch.equal(a.x_train, b.x_train)


def test_synthetic_matches_the_reference_construction():
    split = build_split("synthetic", seed=0, size=1000)
    assert split.x_train.shape == (800, 128) and split.y_train.max() < 10
    # Labels come from a teacher network: a linear probe can learn them well above chance.
    assert len(set(split.y_train.tolist())) > 3


def _one_shard_epoch(threads=1):
    torch.set_num_threads(threads)
    split = build_split("digits", seed=0)
    x, y = shard_of(split.x_train, split.y_train, 1, 2)
    model = initial_model("cnn", [1, 8, 8], 10, seed=0)
    opt = make_optimizer("adam", model.parameters(), lr=1e-3)
    result = train_epoch(model, opt, x, y, batch_size=32, generator=shard_generator(0, 1, 1))
    return state_to_bytes(model.state_dict()), optimizer_to_bytes(opt), result


def test_a_shard_is_deterministic():
    w1, o1, r1 = _one_shard_epoch()
    w2, o2, r2 = _one_shard_epoch()
    assert w1 == w2 and o1 == o2 and r1 == r2


def test_training_lowers_the_loss_and_learns():
    split = build_split("digits", seed=0)
    model = initial_model("mlp", [1, 8, 8], 10, seed=0)
    opt = make_optimizer("adam", model.parameters(), lr=1e-3)
    before, _ = evaluate(model, split.x_val, split.y_val)
    for epoch in range(5):
        train_epoch(model, opt, split.x_train, split.y_train, batch_size=32, generator=shard_generator(0, epoch, 0))
    after, accuracy = evaluate(model, split.x_val, split.y_val)
    assert after < before / 4 and accuracy > 0.9


def test_checkpoint_round_trip_rebuilds_the_model_without_pickle():
    model = initial_model("cnn", [1, 8, 8], 10, seed=7)
    data = checkpoint_bytes(model.state_dict(), {"model_type": "cnn", "input_shape": [1, 8, 8], "num_classes": 10})
    assert json.loads(read_metadata(data)["tensorfleet.model"])["model_type"] == "cnn"
    loaded = load_checkpoint(data)
    x = torch.rand(4, 1, 8, 8)
    model.eval()
    assert torch.equal(loaded(x), model(x))
    assert b"pickle" not in data[:200] and data[8:9] == b"{"  # a safetensors JSON header, not a pickle stream


def test_optimizer_state_round_trip_continues_identically():
    torch.manual_seed(0)
    model = build_model("logreg", [4], 3)
    opt = make_optimizer("adam", model.parameters(), lr=0.1)
    x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    train_epoch(model, opt, x, y, batch_size=16, generator=torch.Generator().manual_seed(0))
    saved_w, saved_o = model.state_dict(), optimizer_to_bytes(opt)

    clone = build_model("logreg", [4], 3)
    clone.load_state_dict({k: v.clone() for k, v in saved_w.items()})
    clone_opt = make_optimizer("adam", clone.parameters(), lr=0.1)
    optimizer_from_bytes(clone_opt, saved_o)
    for m, o in ((model, opt), (clone, clone_opt)):
        train_epoch(m, o, x, y, batch_size=16, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), clone.state_dict().values(), strict=True))


def test_sgd_momentum_state_round_trips():
    model = build_model("logreg", [4], 3)
    opt = make_optimizer("sgd", model.parameters(), lr=0.1, momentum=0.9)
    train_epoch(
        model,
        opt,
        torch.randn(32, 4),
        torch.randint(0, 3, (32,)),
        batch_size=8,
        generator=torch.Generator().manual_seed(0),
    )
    fresh = make_optimizer("sgd", model.parameters(), lr=0.1, momentum=0.9)
    optimizer_from_bytes(fresh, optimizer_to_bytes(opt))
    assert torch.equal(
        fresh.state_dict()["state"][0]["momentum_buffer"], opt.state_dict()["state"][0]["momentum_buffer"]
    )


def test_unknown_names_are_refused():
    with pytest.raises(ValueError):
        build_model("transformer", [4], 3)
    with pytest.raises(ValueError):
        build_model("cnn", [4], 3)
    with pytest.raises(ValueError):
        make_optimizer("lbfgs", [], lr=1)
    assert set(bytes_to_state(state_to_bytes({"a": torch.ones(2)}))) == {"a"}


def test_the_shapes_images_are_cifar_sized_and_seeded():
    """The built-in 'synthetic-shapes' (the benchmark's CIFAR-sized workload): 3x32x32, 10 classes,
    the same tensors for the same seed, an 80/20 split of 4,000 by default."""
    a, b = build_split("synthetic-shapes", seed=0), build_split("synthetic-shapes", seed=0, size=500)
    assert tuple(a.x_train.shape) == (3200, 3, 32, 32) and len(a.x_val) == 800
    assert set(a.y_train.tolist()) == set(range(10)) and len(b.x_train) == 400
    assert torch.equal(build_split("synthetic-shapes", seed=0).x_train, a.x_train)
    reference = Path(__file__).resolve().parents[2] / "shared" / "bench" / "reference.py"
    if reference.exists():  # the same construction as the yardstick's shapes-resnet
        spec = importlib.util.spec_from_file_location("reference", reference)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        x_train, y_train, x_val, y_val = module.load_data("shapes-resnet")
        assert torch.equal(a.x_train, x_train) and torch.equal(a.y_val, y_val)
