"""Model averaging: the aggregate step's sample-weighted mean of shard weights."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def weighted_average(states: Sequence[dict[str, torch.Tensor]], weights: Sequence[float]) -> dict[str, torch.Tensor]:
    """Sum_i w_i * state_i / sum_i w_i for floating tensors, in the order given.

    A fixed order keeps the result bit-for-bit reproducible. Integer tensors
    (counters such as BatchNorm's ``num_batches_tracked``) are taken from the
    first state.
    """
    if not states:
        raise ValueError("nothing to average")
    if len(states) != len(weights):
        raise ValueError("one weight per state is needed")
    total = float(sum(weights))
    if total <= 0:
        raise ValueError("the weights must add up to more than zero")
    keys = list(states[0])
    for s in states[1:]:
        if set(s) != set(keys):
            raise ValueError("the states do not hold the same tensors")
    out: dict[str, torch.Tensor] = {}
    for key in keys:
        first = states[0][key]
        if not first.is_floating_point():
            out[key] = first.clone()
            continue
        acc = torch.zeros_like(first, dtype=torch.float64)
        for state, w in zip(states, weights, strict=True):
            acc.add_(state[key].to(torch.float64), alpha=w / total)
        out[key] = acc.to(first.dtype)
    return out
