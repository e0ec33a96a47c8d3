"""Readiness: can this process reach the database, the broker and object storage?

The three checks run at once, each in a thread of its own, and the answer waits at
most TENSORFLEET_READY_TIMEOUT seconds: a probe must answer within its own timeout even
when a dependency hangs (a PostgreSQL host that drops packets blocks a connect for
minutes). A check that has not answered by then counts as failed; its thread finishes
on its own, bounded by the short socket timeouts each check sets where it can.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from django.conf import settings

logger = logging.getLogger(__name__)


def check_database() -> None:
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    finally:
        connection.close()  # this thread's own connection: leave none behind


def check_broker() -> None:
    from monitoring_app.broker_status import broker_ping

    broker_ping()


def _s3_probe(storage):
    """A copy of an S3 storage whose client gives up quickly and does not retry."""
    from botocore.config import Config

    probe = copy.copy(storage)  # django-storages gives the copy connections of its own
    probe.client_config = storage.client_config.merge(
        Config(connect_timeout=1, read_timeout=2, retries={"max_attempts": 1, "mode": "standard"})
    )
    return probe


def check_storage() -> None:
    """Every bucket the settings name answers (HEAD bucket: found and allowed), or the
    local storage folder is readable."""
    from django.core.files.storage import storages

    seen = set()
    for alias in ("default", "datasets"):
        storage = storages[alias]
        bucket = getattr(storage, "bucket_name", None)
        where = (type(storage), bucket or getattr(storage, "location", ""))
        if where in seen:
            continue
        seen.add(where)
        if bucket:
            _s3_probe(storage).connection.meta.client.head_bucket(Bucket=bucket)
        else:
            storage.exists(".ready")


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "broker": check_broker,
    "storage": check_storage,
}


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _run(check: Callable[[], None], future: Future, timings: dict, name: str) -> None:
    started = time.monotonic()
    try:
        check()
    except Exception as exc:  # noqa: BLE001 - any error is this check's failure, reported by name
        timings[name] = time.monotonic() - started
        future.set_exception(exc)
    else:
        timings[name] = time.monotonic() - started
        future.set_result(None)


def readiness(timeout: float | None = None) -> dict[str, dict]:
    """``{name: {"ok": bool, "ms": int, "error": str (failed only)}}`` for every check."""
    timeout = settings.TENSORFLEET_READY_TIMEOUT if timeout is None else timeout
    started = time.monotonic()
    futures: dict[str, Future] = {}
    timings: dict[str, float] = {}
    for name, check in CHECKS.items():
        futures[name] = Future()
        # Daemon threads: a hung check never holds up the response or the process's exit.
        thread = threading.Thread(target=_run, args=(check, futures[name], timings, name), daemon=True)
        thread.name = f"ready-{name}"
        thread.start()
    results = {}
    for name, future in futures.items():
        remaining = max(0.0, started + timeout - time.monotonic())
        try:
            future.result(timeout=remaining)
            results[name] = {"ok": True}
        except TimeoutError:
            results[name] = {"ok": False, "error": f"no answer within {timeout:g}s"}
            logger.warning("readiness: %s gave no answer within %gs", name, timeout)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            # The answer names the error's class only (the endpoint is public); the log has the message.
            results[name] = {"ok": False, "error": type(exc).__name__}
            logger.warning("readiness: %s failed: %s", name, _describe(exc))
        results[name]["ms"] = round(timings.get(name, timeout) * 1000)
    return results
