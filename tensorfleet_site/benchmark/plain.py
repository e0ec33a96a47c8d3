"""The yardstick: plain PyTorch loops doing the benchmark workloads' arithmetic with the
platform's own zoo, datasets and training step, and no orchestration at all.

The workloads are those of shared/bench/reference.py (same data, model, optimiser,
batch size and epochs); ``single`` is one process on every core, ``average`` is one
process per shard training its slice and averaging weights every epoch over gloo.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import torch

from workers.averaging import weighted_average
from workers.splits import build_split, shard_of
from workers.training import evaluate, make_optimizer, shard_generator, train_epoch
from workers.zoo import initial_model


@dataclass(frozen=True)
class Workload:
    name: str
    model_type: str
    dataset: str
    dataset_size: int | None
    batch_size: int
    epochs: int
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    model_args: dict | None = None

    def spec(self, shards: int, threads: int) -> dict:
        """The same work as a platform job."""
        spec = {
            "name": f"bench {self.name} x{shards}",
            "model_type": self.model_type,
            "dataset": self.dataset,
            "num_workers": shards,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "optimizer": self.optimizer,
            "weight_decay": self.weight_decay,
            "model_args": self.model_args or {},
            "seed": 0,
            "threads": threads,
            "keep_checkpoints": 1,
        }
        if self.dataset_size:
            spec["dataset_size"] = self.dataset_size
        return spec


WORKLOADS = {
    "digits-cnn": Workload("digits-cnn", "cnn", "digits", None, batch_size=32, epochs=30),
    "synth-mlp": Workload("synth-mlp", "mlp", "synthetic", 200_000, batch_size=256, epochs=3),
    # CIFAR-sized: torchvision's resnet18 (its default stem, as reference.py builds it) on the
    # built-in 'synthetic-shapes' images (3 x 32 x 32, 10 classes, reference.py's construction), AdamW.
    "shapes-resnet": Workload(
        "shapes-resnet",
        "resnet18",
        "synthetic-shapes",
        None,
        batch_size=64,
        epochs=2,
        optimizer="adamw",
        weight_decay=0.01,
        model_args={"stem": "imagenet"},
    ),  # fmt: skip
}


def _data(w: Workload):
    split = build_split(w.dataset, seed=0, size=w.dataset_size)
    return split, list(split.input_shape), int(split.y_train.max()) + 1


def single(w: Workload, threads: int) -> dict:
    """One process, all cores. Wall time covers training only (data made before the clock)."""
    torch.set_num_threads(threads)
    split, shape, classes = _data(w)
    model = initial_model(w.model_type, shape, classes, seed=0, model_args=w.model_args)
    opt = make_optimizer(w.optimizer, model.parameters(), lr=w.learning_rate, weight_decay=w.weight_decay)
    t0 = time.perf_counter()
    for epoch in range(1, w.epochs + 1):
        train_epoch(
            model, opt, split.x_train, split.y_train, batch_size=w.batch_size, generator=shard_generator(0, epoch, 0)
        )
    wall = time.perf_counter() - t0
    _, acc = evaluate(model, split.x_val, split.y_val)
    return {"wall_s": wall, "samples_per_s": len(split.x_train) * w.epochs / wall, "val_accuracy": acc}


def _average_worker(rank: int, procs: int, w: Workload, port: int, out) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=procs)
    split, shape, classes = _data(w)
    x, y = shard_of(split.x_train, split.y_train, rank, procs)
    model = initial_model(w.model_type, shape, classes, seed=0, model_args=w.model_args)
    opt = make_optimizer(w.optimizer, model.parameters(), lr=w.learning_rate, weight_decay=w.weight_decay)
    dist.barrier()
    t0 = time.perf_counter()
    for epoch in range(1, w.epochs + 1):
        train_epoch(model, opt, x, y, batch_size=w.batch_size, generator=shard_generator(0, epoch, rank))
        with torch.no_grad():  # the platform's aggregate: a sample-weighted mean of the shards' weights
            state = model.state_dict()
            gathered = [None] * procs
            dist.all_gather_object(gathered, ({k: v.clone() for k, v in state.items()}, len(x)))
            model.load_state_dict(weighted_average([g[0] for g in gathered], [g[1] for g in gathered]))
    dist.barrier()
    wall = time.perf_counter() - t0
    if rank == 0:
        _, acc = evaluate(model, split.x_val, split.y_val)
        out.put({"wall_s": wall, "samples_per_s": len(split.x_train) * w.epochs / wall, "val_accuracy": acc})
    dist.destroy_process_group()


def average(w: Workload, procs: int = 2) -> dict:
    """One process per shard (one thread each), weights averaged every epoch."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    port = 29500 + os.getpid() % 1000
    mp.start_processes(_average_worker, args=(procs, w, port, queue), nprocs=procs, start_method="spawn")
    return queue.get()
