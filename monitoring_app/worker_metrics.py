"""A Celery worker's Prometheus exporter, and the Celery signals that count tasks.

Why multiprocess mode, and one port per worker (not one per process)
--------------------------------------------------------------------
Workers are prefork: tasks run in pool child processes, which come and go (a child
killed by a time limit is replaced). An exporter in each child would need a port per
child that changes as children are replaced, and would lose a dead child's counts.
Instead the children write their counters to memory-mapped files (prometheus-client's
multiprocess mode) and the worker's main process, which lives as long as the worker,
serves their sum on TENSORFLEET_WORKER_METRICS_PORT. A replaced child's file stays and
keeps counting, so counters only go up while the worker runs. Prometheus scrapes one
stable address per worker (a pod, a compose replica, runfleet's base port + i).

The folder of those files is private to the worker (under the state folder, named
after the worker's node name), emptied when the worker starts and removed when it
stops: no two workers ever share it. prometheus-client picks its value class when it
is first imported, which in a worker is during django.setup(), before any worker hook
runs; so the main process chooses the multiprocess class here, before the pool forks.
Every metric in metrics.py has labels, so no value had been made yet.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from celery import signals
from django.conf import settings

from monitoring_app import metrics

logger = logging.getLogger(__name__)

_exporter: dict = {}


def on_task_prerun(sender=None, task=None, **kwargs) -> None:
    task = task or sender
    metrics.task_event(queue=metrics.queue_of(task.request), task=task.name, state=metrics.STARTED)


def on_task_failure(sender=None, **kwargs) -> None:
    metrics.task_event(queue=metrics.queue_of(sender.request), task=sender.name, state=metrics.FAILED)


def on_task_retry(sender=None, request=None, **kwargs) -> None:
    metrics.task_event(queue=metrics.queue_of(request or sender.request), task=sender.name, state=metrics.RETRIED)


def metrics_dir(nodename: str) -> Path:
    return Path(settings.STATE_DIR) / "worker-metrics" / re.sub(r"[^A-Za-z0-9_.@-]", "_", nodename)


def on_worker_init(sender=None, **kwargs) -> None:
    """Start the exporter in the worker's main process, before the pool forks."""
    port = settings.TENSORFLEET_WORKER_METRICS_PORT
    if not port:
        return
    from prometheus_client import CollectorRegistry, start_http_server, values
    from prometheus_client.multiprocess import MultiProcessCollector

    folder = metrics_dir(getattr(sender, "hostname", None) or f"worker-{os.getpid()}")
    shutil.rmtree(folder, ignore_errors=True)  # a crashed run's files would add to this run's counts
    folder.mkdir(parents=True)
    _exporter["folder"] = folder  # removed at shutdown, served or not
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)  # read by the pool children's values
    values.ValueClass = values.MultiProcessValue()  # looked up at each value's creation: see the docstring
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    address = settings.TENSORFLEET_WORKER_METRICS_ADDRESS
    try:
        server, _thread = start_http_server(port, addr=address, registry=registry)
    except OSError as exc:
        # A worker without its exporter still trains; say so loudly.
        logger.error("worker metrics: cannot listen on %s:%s (%s); this worker is not scraped", address, port, exc)
        return
    _exporter["server"] = server
    logger.info("worker metrics on http://%s:%s/metrics", address, port)


def on_worker_shutdown(**kwargs) -> None:
    server, folder = _exporter.pop("server", None), _exporter.pop("folder", None)
    if server is not None:
        server.shutdown()
        server.server_close()
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def connect() -> None:
    """Connect the handlers (idempotent: dispatch_uid). Called from the app's ready()."""
    signals.task_prerun.connect(on_task_prerun, dispatch_uid="tensorfleet-metrics-prerun", weak=False)
    signals.task_failure.connect(on_task_failure, dispatch_uid="tensorfleet-metrics-failure", weak=False)
    signals.task_retry.connect(on_task_retry, dispatch_uid="tensorfleet-metrics-retry", weak=False)
    signals.worker_init.connect(on_worker_init, dispatch_uid="tensorfleet-metrics-worker-init", weak=False)
    signals.worker_shutdown.connect(on_worker_shutdown, dispatch_uid="tensorfleet-metrics-worker-shutdown", weak=False)
