"""Rounds inside an epoch (``sync_every_steps``, H): which samples a shard trains in a
round, how many rounds an epoch has, and where a round's global state lives.

A shard's epoch is its seeded order of samples (the same permutation an epoch without
rounds draws); round r trains optimiser steps (r-1)*H .. r*H-1 of it. Every shard
counts the same rounds from the data alone: ceil(steps of the largest shard / H).

The global weights and the outer state (workers/outer.py) after a round are one
safetensors file whose key holds its sha256 (``storage_app.blobs.round_state_key``);
a worker keeps what it last read or wrote in memory (workers/state_cache.py), so a
round whose previous aggregate ran on the same worker reads nothing from storage.
"""

from __future__ import annotations

import hashlib
import math

import torch

from jobs.models import Job
from jobs.services import lifecycle
from storage_app.blobs import blob_read, blob_write, round_state_key, shard_optimizer_key
from workers.outer import outer_state_to_tensors, split_outer_state
from workers.state_cache import cache_get, cache_put
from workers.training import augment_images, augment_seed, shard_generator
from workers.weights import bytes_to_state, state_to_bytes

State = dict[str, torch.Tensor]


def rounds_in_epoch(*, train_samples: int, shards: int, batch_size: int, sync_every_steps: int | None) -> int:
    """Rounds per epoch: 1 without ``sync_every_steps``; else the largest shard's steps over H, rounded up."""
    if not sync_every_steps:
        return 1
    largest = math.ceil(train_samples / shards)
    return max(1, math.ceil(math.ceil(largest / batch_size) / sync_every_steps))


def round_order(
    samples: int, *, generator: torch.Generator, batch_size: int, sync_every_steps: int, round: int
) -> torch.Tensor:
    """The sample indices round ``round`` (1-based) of a shard trains, in order: its slice of
    the epoch's permutation drawn from ``generator`` (the epoch's, as without rounds)."""
    perm = torch.randperm(samples, generator=generator)
    per_round = sync_every_steps * batch_size
    return perm[(round - 1) * per_round : round * per_round]


def _nbytes(state: State) -> int:
    return sum(t.numel() * t.element_size() for t in state.values())


def global_state_write(job_id, weights: State, outer: State) -> str:
    """Store the global weights and outer state after a round; returns its content-addressed key."""
    data = state_to_bytes({**weights, **outer_state_to_tensors(outer)})
    key = round_state_key(job_id, hashlib.sha256(data).hexdigest())
    blob_write(key, data)
    cache_put(key, (weights, outer), _nbytes(weights) + _nbytes(outer))
    return key


def global_state_read(key: str) -> tuple[State, State]:
    """(weights, outer state) at a round state key: from memory, else from storage (checked against its sha256)."""
    found = cache_get(key)
    if found is not None:
        return found
    data = blob_read(key)
    sha = key.rsplit("/", 1)[-1].split(".", 1)[0]
    if hashlib.sha256(data).hexdigest() != sha:
        raise ValueError(f"the round state at {key} does not match its sha256")
    weights, outer = split_outer_state(bytes_to_state(data))
    cache_put(key, (weights, outer), _nbytes(weights) + _nbytes(outer))
    return weights, outer


def checkpoint_state(key: str, sha256: str) -> State:
    """An epoch checkpoint's weights, remembered by the checkpoint's sha256."""
    name = f"checkpoint:{sha256}"
    found = cache_get(name)
    if found is None:
        found = bytes_to_state(blob_read(key))
        cache_put(name, found, _nbytes(found))
    return found


def checkpoint_remember(sha256: str, weights: State) -> None:
    """The aggregate that wrote a checkpoint keeps its weights: the next epoch's shards on this worker start from them."""
    cache_put(f"checkpoint:{sha256}", weights, _nbytes(weights))


def work_read(key: str) -> bytes:
    """A shard's optimiser state: every try writes the same bytes under its key, so the key names them."""
    found = cache_get(key)
    return found if found is not None else blob_read(key)


def work_write(key: str, data: bytes) -> str:
    written = blob_write(key, data)
    cache_put(key, data, len(data))
    return written


def round_generator(seed: int, epoch: int, shard: int, round: int) -> torch.Generator:
    """The random choices a shard makes in one round besides its data order (dropout):
    from (seed, epoch, shard, round) alone, so a retried round draws the same."""
    digest = hashlib.sha256(f"round:{seed}:{epoch}:{shard}:{round}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def previous_optimizer_key(job: Job, epoch: int, round: int, shard: int) -> str | None:
    """Where the shard's optimiser state was left: the round before, or the last round of the epoch before."""
    if round > 1:
        return shard_optimizer_key(job.id, epoch, shard, round - 1)
    return shard_optimizer_key(job.id, epoch - 1, shard, job.rounds_per_epoch) if epoch > 1 else None


def shard_data(job: Job, epoch: int, round: int, shard: int, x, y):
    """The samples of one round of a shard, in training order, with the generator that
    seeds its random choices, and whether ``train_epoch`` shuffles them itself.

    Without ``sync_every_steps`` the epoch is one round and trains as it always has: the
    whole shard, augmented with (seed, epoch, shard) and shuffled by the shard's epoch
    generator. With it, the round's slice of that same epoch order (``rounds.round_order``),
    its augmentation and dropout seeded from (seed, epoch, shard, round)."""
    if not job.sync_every_steps:
        if job.augment:  # on the CPU copy, from (seed, epoch, shard) alone
            x = augment_images(x, seed=augment_seed(job.seed, epoch, shard))
        return x, y, shard_generator(job.seed, epoch, shard), True
    order = round_order(
        len(x),
        generator=shard_generator(job.seed, epoch, shard),
        batch_size=job.batch_size,
        sync_every_steps=job.sync_every_steps,
        round=round,
    )
    x, y = x[order], y[order]
    if job.augment:
        x = augment_images(x, seed=augment_seed(job.seed, epoch, shard, round))
    return x, y, round_generator(job.seed, epoch, shard, round), False


def rounds_fix(job: Job, train_samples: int) -> None:
    """The job's rounds per epoch, counted from the data by the first worker (``lifecycle.job_rounds_fix``)."""
    if not job.rounds_per_epoch:
        count = rounds_in_epoch(
            train_samples=train_samples,
            shards=job.num_workers,
            batch_size=job.batch_size,
            sync_every_steps=job.sync_every_steps,
        )
        job.rounds_per_epoch = lifecycle.job_rounds_fix(job_id=job.id, rounds=count)
