"""What the broker says about the fleet: reachable or not, queue lengths, workers online.

Each answer takes at most about a second, so a scrape, a readiness probe or the
overview never hangs on a broker that is down.
"""

from __future__ import annotations

import threading

import redis
from django.conf import settings

from jobs.pending_messages import PRIORITY_SUFFIXES, is_redis_url

# Workers online: asked by jobs.queue_consumers (one broadcast, cached a few seconds), so
# /metrics, the overview and the API's "no worker consumes queue ..." share one answer.
from jobs.queue_consumers import Worker, online_workers  # noqa: F401 - re-exported for collectors, overview

BROKER_TIMEOUT_S = 1.0

_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()


def redis_client() -> redis.Redis | None:
    """A client of the broker's Redis with short timeouts (None for another broker)."""
    url = settings.CELERY_BROKER_URL
    if not is_redis_url(url):
        return None
    with _clients_lock:
        if url not in _clients:
            _clients[url] = redis.Redis.from_url(
                url, socket_timeout=BROKER_TIMEOUT_S, socket_connect_timeout=BROKER_TIMEOUT_S
            )
        return _clients[url]


def broker_ping() -> None:
    """Raise if the broker does not answer within about a second."""
    client = redis_client()
    if client is not None:
        client.ping()
        return
    from kombu import Connection  # RabbitMQ and other kombu transports

    with Connection(settings.CELERY_BROKER_URL, connect_timeout=BROKER_TIMEOUT_S) as connection:
        connection.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)


def monitored_queues() -> list[str]:
    return [*settings.TENSORFLEET_QUEUES, settings.TENSORFLEET_CONTROL_QUEUE]


def queue_depths() -> dict[str, int] | None:
    """Messages waiting in each queue (Celery's Redis transport keeps a queue as a list,
    plus one list per priority level). None when the broker is not Redis."""
    client = redis_client()
    if client is None:
        return None
    queues = monitored_queues()
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        for suffix in PRIORITY_SUFFIXES:
            pipe.llen(queue + suffix)
    lengths = pipe.execute()
    n = len(PRIORITY_SUFFIXES)
    return {queue: sum(lengths[i * n : (i + 1) * n]) for i, queue in enumerate(queues)}
