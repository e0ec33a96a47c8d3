"""No-op Celery tasks: the floor the platform's dispatch overhead is measured against."""

from __future__ import annotations

import time

import redis
from celery import chord, signature
from django.conf import settings

from tensorfleet_site.celery import app


@app.task(name="bench.noop")
def noop(*args) -> None:
    return None


@app.task(name="bench.noop_epoch")
def noop_epoch(run_id: str, remaining: int, shards: int, queue: str) -> None:
    """The body of one no-op chord: send the next one, or record the finish time."""
    if remaining <= 0:
        redis.Redis.from_url(settings.CELERY_BROKER_URL).set(f"bench:noop:{run_id}", repr(time.time()), ex=3600)
        return
    noop_chord(run_id, remaining - 1, shards, queue)


def noop_chord(run_id: str, epochs: int, shards: int, queue: str) -> None:
    header = [signature("bench.noop", queue=queue) for _ in range(shards)]
    body = signature("bench.noop_epoch", args=(run_id, epochs, shards, queue), queue=queue, immutable=True)
    chord(header, body).apply_async()
