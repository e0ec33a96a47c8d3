"""What the broker still holds: message ids waiting in a queue or delivered but not
yet acknowledged. Redis only (other brokers answer None: not inspectable)."""

from __future__ import annotations

import json

import redis
from django.conf import settings

PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")  # kombu's Redis priority lists
SCAN_LIMIT = 100_000


def _message_id(raw: bytes) -> str | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if isinstance(data, list):  # the unacked hash stores [message, exchange, routing_key]
        data = data[0] if data else {}
    return (data.get("headers") or {}).get("id") or (data.get("properties") or {}).get("correlation_id")


def is_redis_url(url: str) -> bool:
    return url.startswith(("redis://", "rediss://", "unix://"))


def pending_message_ids(queues: list[str]) -> set[str] | None:
    url = settings.CELERY_BROKER_URL
    if not is_redis_url(url):
        return None
    ids: set[str] = set()
    with redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5) as client:  # closed each pass
        for queue in queues:
            for suffix in PRIORITY_SUFFIXES:
                for raw in client.lrange(queue + suffix, 0, SCAN_LIMIT):
                    if mid := _message_id(raw):
                        ids.add(mid)
        for raw in client.hvals("unacked"):
            if mid := _message_id(raw):
                ids.add(mid)
    return ids
