"""Weights and optimiser state as safetensors bytes: nothing here ever unpickles.

Checkpoints carry the model config in their metadata (model_type, input_shape,
num_classes, model_args when the job gave any, class_names when its labels have
names) so that ``load_checkpoint(bytes)`` gives back a ready model from the file
alone, a plugin's model too (its package installed). A job without model_args writes
the same bytes as before models took any.
"""

from __future__ import annotations

import hashlib
import json
import struct

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn
from torch.optim.lr_scheduler import LRScheduler

from workers.zoo import build_model

CONFIG_KEY = "tensorfleet.model"
OPTIMIZER_GROUPS_KEY = "tensorfleet.param_groups"
SCHEDULER_KEY = "tensorfleet.lr_scheduler"
SCALER_KEY = "tensorfleet.grad_scaler"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def state_to_bytes(state: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    return st_save(tensors, metadata=metadata)


def read_metadata(data: bytes) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors blob (header: u64 length, then JSON)."""
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    return header.get("__metadata__", {}) or {}


def bytes_to_state(data: bytes) -> dict[str, torch.Tensor]:
    return st_load(data)


def model_config(model_type: str, input_shape, num_classes: int, model_args: dict | None = None) -> dict:
    """What a checkpoint's metadata says of its model; the same as ``jobs.models.Job.model_config``."""
    config = {"model_type": model_type, "input_shape": list(input_shape), "num_classes": int(num_classes)}
    if model_args:  # left out when empty: a job without arguments keeps its checkpoint's bytes
        config["model_args"] = dict(model_args)
    return config


def checkpoint_config(data: bytes) -> dict:
    """The model config a checkpoint carries."""
    return json.loads(read_metadata(data)[CONFIG_KEY])


def checkpoint_bytes(model_state: dict[str, torch.Tensor], config: dict, class_names=()) -> bytes:
    """The checkpoint file; ``class_names`` (what each output means) join the model config
    when the labels have names. One metadata entry, not two: safetensors writes its
    metadata from a hash map, so two entries come out in either order from call to call
    and a job run twice would differ in its checkpoint's bytes (measured: 6 orders of 3
    keys in 50 calls). Without names the bytes are those of before."""
    if class_names:
        config = {**config, "class_names": list(class_names)}
    return state_to_bytes(model_state, {CONFIG_KEY: json.dumps(config, sort_keys=True)})


def checkpoint_class_names(data: bytes) -> list[str]:
    """The names of a checkpoint's classes, in output order; empty when its labels had none."""
    return list(checkpoint_config(data).get("class_names", []))


def load_checkpoint(data: bytes, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the model a checkpoint was trained as (a built-in or a plugin's), with its weights loaded."""
    config = checkpoint_config(data)
    model = build_model(config["model_type"], config["input_shape"], config["num_classes"], config.get("model_args"))
    model.load_state_dict(bytes_to_state(data))
    return model.to(map_location).eval()


def optimizer_to_bytes(
    optimizer: torch.optim.Optimizer,
    *,
    scheduler: LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> bytes:
    """The optimiser's state as safetensors: its tensors as tensors, its param groups, the
    LR scheduler's state and the fp16 loss scaler's state as JSON metadata (numbers,
    strings and lists only: JSON keeps a float's every bit, and nothing is pickled)."""
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for index, slots in sd["state"].items():
        for name, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{name}"] = value
            elif value is not None:
                tensors[f"state.{index}.{name}"] = torch.tensor(value)
    metadata = {OPTIMIZER_GROUPS_KEY: json.dumps(sd["param_groups"])}
    if scheduler is not None:
        metadata[SCHEDULER_KEY] = json.dumps(scheduler.state_dict())
    if scaler is not None:
        metadata[SCALER_KEY] = json.dumps(scaler.state_dict())
    return state_to_bytes(tensors, metadata)


def optimizer_from_bytes(
    optimizer: torch.optim.Optimizer,
    data: bytes,
    *,
    scheduler: LRScheduler | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Load what ``optimizer_to_bytes`` saved into freshly built objects of the same kind,
    so that training continues exactly where it stopped (the scheduler at its step)."""
    metadata = read_metadata(data)
    groups = json.loads(metadata[OPTIMIZER_GROUPS_KEY])
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in bytes_to_state(data).items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    for obj, key, what in ((scheduler, SCHEDULER_KEY, "LR schedule"), (scaler, SCALER_KEY, "fp16 loss scaler")):
        if obj is None:
            continue
        if key not in metadata:
            raise ValueError(f"the saved optimiser state has no {what} state to continue from")
        obj.load_state_dict(json.loads(metadata[key]))
