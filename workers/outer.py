"""The outer step of a round: how the global weights move given the shards' average.

``average`` (federated averaging) takes the average as the new global weights. ``sgd``
and ``nesterov`` (DiLoCo, Douillard et al., arXiv 2311.08105) treat the change the
shards made, global - average, as a gradient of the global weights and apply torch's
own SGD to it (for DiLoCo: Nesterov momentum, outer learning rate 0.7, momentum 0.9).
The momentum buffers are the outer state: they are saved with the global weights so
a resumed or recovered job continues bit for bit.

Pure: no Django. Float tensors only; integer tensors (BatchNorm's counters) are taken
from the average.
"""

from __future__ import annotations

import torch

OUTER_OPTIMIZERS = ("average", "sgd", "nesterov")
MOMENTUM_PREFIX = "outer_momentum."


def outer_step(
    global_state: dict[str, torch.Tensor],
    averaged: dict[str, torch.Tensor],
    outer_state: dict[str, torch.Tensor],
    *,
    kind: str,
    lr: float,
    momentum: float,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The new global weights and the new outer state (momentum buffers by tensor name)."""
    if kind not in OUTER_OPTIMIZERS:
        raise ValueError(f"unknown outer optimizer {kind!r}")
    if kind == "average":
        return {k: v.clone() for k, v in averaged.items()}, {}
    names = [k for k, v in global_state.items() if v.is_floating_point()]
    params = [torch.nn.Parameter(global_state[k].detach().clone().to(torch.float32)) for k in names]
    for name, param in zip(names, params, strict=True):
        param.grad = param.detach() - averaged[name].to(torch.float32)  # the outer "gradient"
    nesterov = kind == "nesterov"
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum if nesterov else 0.0, nesterov=nesterov)
    if nesterov:
        for name, param in zip(names, params, strict=True):
            if name in outer_state:
                optimizer.state[param]["momentum_buffer"] = outer_state[name].to(torch.float32).clone()
    optimizer.step()
    new_global = {k: v.clone() for k, v in averaged.items()}  # integer tensors from the average
    new_outer: dict[str, torch.Tensor] = {}
    for name, param in zip(names, params, strict=True):
        new_global[name] = param.detach().to(global_state[name].dtype)
        buffer = optimizer.state[param].get("momentum_buffer")
        if buffer is not None:
            new_outer[name] = buffer.detach().clone()
    return new_global, new_outer


def outer_state_to_tensors(outer_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """For saving beside the weights in one safetensors file (names prefixed)."""
    return {MOMENTUM_PREFIX + k: v for k, v in outer_state.items()}


def split_outer_state(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(weights, outer state) from a file written with ``outer_state_to_tensors``."""
    weights = {k: v for k, v in tensors.items() if not k.startswith(MOMENTUM_PREFIX)}
    outer = {k[len(MOMENTUM_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MOMENTUM_PREFIX)}
    return weights, outer
