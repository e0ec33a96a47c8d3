"""The outer step (workers/outer.py): averaging, outer SGD and DiLoCo's Nesterov momentum."""

from __future__ import annotations

import torch

from workers.outer import outer_state_to_tensors, outer_step, split_outer_state


def states():
    g = torch.Generator().manual_seed(0)
    glob = {"w": torch.randn(3, 4, generator=g), "b": torch.randn(4, generator=g), "n": torch.tensor(7)}
    avg = {
        k: (v + 0.1 * torch.randn(v.shape, generator=g)) if v.is_floating_point() else v + 1 for k, v in glob.items()
    }
    return glob, avg


def test_average_takes_the_average():
    glob, avg = states()
    new, outer = outer_step(glob, avg, {}, kind="average", lr=0.7, momentum=0.9)
    assert all(torch.equal(new[k], avg[k]) for k in avg) and outer == {}


def test_outer_sgd_with_lr_one_is_averaging():
    glob, avg = states()
    new, _ = outer_step(glob, avg, {}, kind="sgd", lr=1.0, momentum=0.0)
    assert torch.allclose(new["w"], avg["w"], atol=1e-6) and torch.equal(new["n"], avg["n"])


def test_nesterov_matches_the_formula_and_carries_its_momentum():
    glob, avg = states()
    lr, mu = 0.7, 0.9
    new, outer = outer_step(glob, avg, {}, kind="nesterov", lr=lr, momentum=mu)
    delta = glob["w"] - avg["w"]
    # torch SGD, first step: buf = delta; update = delta + mu * buf
    assert torch.allclose(new["w"], glob["w"] - lr * (delta + mu * delta), atol=1e-6)
    assert torch.allclose(outer["w"], delta, atol=1e-6)
    # a second round continues from the saved buffer
    new2, outer2 = outer_step(new, avg, outer, kind="nesterov", lr=lr, momentum=mu)
    delta2 = new["w"] - avg["w"]
    buf2 = mu * outer["w"] + delta2
    assert torch.allclose(outer2["w"], buf2, atol=1e-6)
    assert torch.allclose(new2["w"], new["w"] - lr * (delta2 + mu * buf2), atol=1e-6)


def test_the_outer_state_round_trips_through_one_file():
    glob, avg = states()
    new, outer = outer_step(glob, avg, {}, kind="nesterov", lr=0.7, momentum=0.9)
    weights, back = split_outer_state({**new, **outer_state_to_tensors(outer)})
    assert set(weights) == set(new) and all(torch.equal(back[k], outer[k]) for k in outer)


def test_the_same_inputs_give_the_same_bits():
    glob, avg = states()
    a, _ = outer_step(glob, avg, {}, kind="nesterov", lr=0.7, momentum=0.9)
    b, _ = outer_step(glob, avg, {}, kind="nesterov", lr=0.7, momentum=0.9)
    assert all(torch.equal(a[k], b[k]) for k in a)
