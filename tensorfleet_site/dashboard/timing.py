"""Where an epoch's time went, from its shards' rows: waiting in the queue (a message
sent, ``Task.dispatched_at``, until a worker took it, ``started_at``) and training
(``started_at`` to ``finished_at``). A busy fleet makes the first long, not the second.

An epoch of several rounds adds its rounds up; within a round the shards run side by side,
so the round waited as long as its longest-waiting shard and trained as long as its
slowest one. A retried shard's ``dispatched_at`` is its last message, so its wait is that
of the attempt that ran."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from jobs.models import Job, Task


@dataclass(frozen=True)
class EpochTime:
    queued_s: float | None
    trained_s: float | None


def _seconds(start, end) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def _add(total: float | None, part: float | None) -> float | None:
    if part is None:
        return total
    return part if total is None else total + part


def epoch_times(job: Job) -> dict[int, EpochTime]:
    """Epoch -> its time waiting in the queue and training (None where no shard says)."""
    rounds: dict[tuple[int, int], list[tuple[float | None, float | None]]] = defaultdict(list)
    rows = Task.objects.filter(job=job).values_list("epoch", "round", "dispatched_at", "started_at", "finished_at")
    for epoch, round_, dispatched, started, finished in rows:
        rounds[(epoch, round_)].append((_seconds(dispatched, started), _seconds(started, finished)))
    epochs: dict[int, EpochTime] = {}
    for (epoch, _round), shards in sorted(rounds.items()):
        waits = [w for w, _ in shards if w is not None]
        trains = [t for _, t in shards if t is not None]
        before = epochs.get(epoch, EpochTime(None, None))
        epochs[epoch] = EpochTime(
            queued_s=_add(before.queued_s, max(waits) if waits else None),
            trained_s=_add(before.trained_s, max(trains) if trains else None),
        )
    return epochs
