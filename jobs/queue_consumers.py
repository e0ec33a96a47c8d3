"""Which queues the workers online consume, so that a job sent to a queue nobody
serves says so, at submission and while it waits, instead of waiting without a sign.

Asked of the workers themselves (Celery's ``inspect active_queues`` broadcast), after
a ping that fails fast when the broker is down (a broadcast to a dead broker retries
its connection for seconds). Answers are cached for ``CACHE_S``, a failed ask too, so a
burst of submissions, the API's job pages and /metrics together cost one broadcast per
period, and no request waits longer than about ``PING_TIMEOUT_S + INSPECT_TIMEOUT_S``
(0.6 s) for it. (Measured here: a refused connection fails the ping in 2 ms; with the
broker up and no worker the broadcast waits its whole timeout, 0.42 s for 0.4 s.)
monitoring_app reads the same cache.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from kombu import Connection

from jobs.models import ACTIVE_STATUSES, Job
from jobs.pending_messages import is_redis_url
from tensorfleet_site.celery import app

PING_TIMEOUT_S = 0.2
INSPECT_TIMEOUT_S = 0.4  # a worker's main process answers even while its pool trains
CACHE_S = 5.0


@dataclass(frozen=True)
class Worker:
    name: str
    queues: tuple[str, ...]


def ask_workers() -> list[Worker]:
    """The broadcast, uncached: the workers that answered, with their queues. Raises
    (redis, kombu or OS errors) when the broker does not answer."""
    replies = app.control.inspect(timeout=INSPECT_TIMEOUT_S).active_queues() or {}
    return sorted(
        (Worker(name=name, queues=tuple(sorted(q["name"] for q in queues or []))) for name, queues in replies.items()),
        key=lambda w: w.name,
    )


def broker_ping(timeout: float = PING_TIMEOUT_S) -> None:
    """Raise unless the broker answers within ``timeout`` seconds (connecting included)."""
    url = settings.CELERY_BROKER_URL
    if is_redis_url(url):
        with redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout) as client:
            client.ping()
        return
    with Connection(url, connect_timeout=timeout) as connection:  # RabbitMQ and other kombu transports
        connection.ensure_connection(max_retries=0, timeout=timeout)  # no retry, no wait


_cache: dict = {"at": -1e9, "workers": None, "error": None}
_lock = threading.Lock()


def online_workers() -> list[Worker]:
    """The workers online (cached ``CACHE_S``); re-raises the broker's error, cached too."""
    with _lock:
        if time.monotonic() - _cache["at"] >= CACHE_S:
            try:
                broker_ping()
                _cache.update(workers=ask_workers(), error=None)
            except Exception as exc:  # noqa: BLE001 - whatever the broker's client raised is kept for the callers
                _cache.update(workers=None, error=exc)
            _cache["at"] = time.monotonic()
        if _cache["error"] is not None:
            raise _cache["error"]
        return _cache["workers"]


def consumed_queues() -> set[str] | None:
    """Queues at least one online worker consumes; None when it cannot be told (the
    broker did not answer) or does not matter (tasks run in-process, eagerly)."""
    if app.conf.task_always_eager:
        return None
    try:
        workers = online_workers()
    except Exception:  # noqa: BLE001 - unknown is not "nobody": say nothing rather than something wrong
        return None
    return {queue for worker in workers for queue in worker.queues}


def queue_warnings(queue: str) -> list[str]:
    """What to tell whoever submits work to ``queue`` (the API's ``warnings``, the CLI)."""
    consumed = consumed_queues()
    if consumed is None or queue in consumed:
        return []
    served = ", ".join(repr(q) for q in sorted(consumed)) or "none"
    return [f"no worker consumes queue {queue!r}; the job waits until one starts (queues served now: {served})"]


def job_waiting_reason(job: Job) -> str | None:
    """Why an active job is not being trained, when the fleet can tell: nobody consumes
    its queue. None otherwise (finished, served, or the broker did not answer)."""
    if job.status not in ACTIVE_STATUSES:
        return None
    consumed = consumed_queues()
    if consumed is None or job.queue in consumed:
        return None
    return f"waiting: no worker consumes queue {job.queue!r}"
