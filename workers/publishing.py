"""A worker tells what it can build: on Celery's ``worker_ready`` it publishes its
models (``workers.plugins``) for each training queue it consumes, replacing what it
published before under the same name; on ``worker_shutdown`` it withdraws them.

The handlers are connected by ``WorkersConfig.ready``; they run in the worker's main
process, before it logs "ready." and takes its first message, so a test (or an
operator) that waits for "ready." finds the offers stored. A worker killed without a
warm shutdown leaves its rows: they still say what that queue's workers can build, and
a restart under the same name replaces them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.db import connection

from jobs.services import architectures
from workers import plugins

logger = logging.getLogger(__name__)


def publish(*, worker: str, queues: Iterable[str]) -> int:
    """Publish this process's models for the training queues among ``queues``; the rows written."""
    training = [q for q in queues if q in settings.TENSORFLEET_QUEUES]
    return architectures.offers_publish(worker=worker, queues=training, offers=plugins.offers())


def _consumed_queues(sender) -> list[str]:
    return sorted(sender.app.amqp.queues.consume_from or {})


def _release_connection() -> None:
    """The main process runs no task: it holds no idle connection to the database (its
    pool's children close what they inherit). Inside a transaction (a test's) it stays."""
    if not connection.in_atomic_block:
        connection.close()


def on_worker_ready(sender=None, **kwargs) -> None:
    """``worker_ready``: ``sender`` is the worker's consumer."""
    queues = _consumed_queues(sender)
    try:
        rows = publish(worker=sender.hostname, queues=queues)
    finally:
        _release_connection()
    logger.info("published %d model offers (%s) on %s", rows, ", ".join(sorted(plugins.entries())), ", ".join(queues))


def on_worker_shutdown(sender=None, **kwargs) -> None:
    """``worker_shutdown``: ``sender`` is the worker (a warm shutdown)."""
    try:
        architectures.offers_withdraw(worker=sender.hostname)
    finally:
        _release_connection()
