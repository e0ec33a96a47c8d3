"""What the broker holds for the reconciler and for cancel: message ids waiting in a
queue, ids delivered to a worker but not yet acknowledged (with when), and removing a
cancelled job's waiting messages. Redis only (other brokers answer None: not
inspectable), through kombu's own key layout (``kombu/transport/redis.py``)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

import redis
from django.conf import settings

from tensorfleet_site.celery import app

logger = logging.getLogger(__name__)

PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")  # kombu's Redis priority lists
SCAN_LIMIT = 100_000
INSPECT_TIMEOUT_S = 1.0


def is_redis_url(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "unix://"))


def _message_id(raw: bytes | str) -> str | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if isinstance(data, list):  # the unacked hash stores [message, exchange, routing_key]
        data = data[0] if data else {}
    if not isinstance(data, dict):
        return None
    return (data.get("headers") or {}).get("id") or (data.get("properties") or {}).get("correlation_id")


def _client() -> redis.Redis | None:
    url = settings.CELERY_BROKER_URL
    if not is_redis_url(url):
        return None
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


@dataclass
class Holdings:
    """Ids waiting in the queues, and ids delivered but unacknowledged -> delivery time."""

    queued: set[str] = field(default_factory=set)
    unacked: dict[str, float] = field(default_factory=dict)

    def __contains__(self, message_id: str) -> bool:
        return message_id in self.queued or message_id in self.unacked


def broker_holdings(queues: list[str]) -> Holdings | None:
    client = _client()
    if client is None:
        return None
    held = Holdings()
    with client:  # closed each pass
        for queue in queues:
            for suffix in PRIORITY_SUFFIXES:
                for raw in client.lrange(queue + suffix, 0, SCAN_LIMIT):
                    if mid := _message_id(raw):
                        held.queued.add(mid)
        delivered: dict = dict(client.zrange("unacked_index", 0, -1, withscores=True))  # type: ignore[arg-type]
        for tag, raw in client.hgetall("unacked").items():
            if mid := _message_id(raw):
                held.unacked[mid] = float(delivered.get(tag, 0.0))
    return held


def pending_message_ids(queues: list[str]) -> set[str] | None:
    held = broker_holdings(queues)
    return None if held is None else held.queued | set(held.unacked)


def ids_held_by_live_workers() -> set[str] | None:
    """Task ids the workers that answer hold: running, prefetched, or waiting out an ETA
    (a retry's countdown). None when the question could not be asked (broker down)."""
    try:
        inspect = app.control.inspect(timeout=INSPECT_TIMEOUT_S)
        held: set[str] = set()
        for answer in (inspect.active(), inspect.reserved(), inspect.scheduled()):
            for tasks in (answer or {}).values():
                for task in tasks:
                    request = task.get("request", task)  # scheduled() wraps the request
                    if request.get("id"):
                        held.add(request["id"])
        return held
    except Exception:  # noqa: BLE001 - a reconciler pass without this rule, not a failed pass
        logger.warning("could not ask the workers what they hold", exc_info=True)
        return None


def messages_remove(queue: str, message_ids: set[str]) -> int:
    """Take a cancelled job's messages out of the queue lists (no worker would run them:
    the job's rows are cancelled), so they do not sit in Redis until consumed.
    Returns how many were removed; 0 for a broker that is not Redis."""
    client = _client()
    if client is None or not message_ids:
        return 0
    removed = 0
    with client:
        for suffix in PRIORITY_SUFFIXES:
            key = queue + suffix
            for raw in client.lrange(key, 0, SCAN_LIMIT):
                if _message_id(raw) in message_ids:
                    removed += client.lrem(key, 1, raw)  # type: ignore[arg-type]  # bytes: redis-py sends them as is
    return removed
