"""The platform's own Prometheus counters, and the hooks that move them.

They count where the work happens: in the Celery pool process that ran the task. A
worker's main process serves them (worker_metrics.py); in the API process (eager runs,
tests) they sit in prometheus_client's default registry with django-prometheus's.

Every metric here has labels, so no value exists before the first ``labels()`` call:
that is what lets a worker switch prometheus_client to multiprocess mode after
Django (and so prometheus_client) has been imported but before any value is made.

Only bounded label values: queue names, registered task names, four states.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from jobs.models import Job
from jobs.task_names import TRAIN_SHARD

# Task states counted. "succeeded" is counted only where a shard's row becomes
# succeeded (jobs.services.claims.task_complete sends jobs.signals.shard_succeeded), never from Celery: a duplicate delivery
# also "succeeds" in Celery but does nothing, and the count must equal the rows.
STARTED, SUCCEEDED, FAILED, RETRIED = "started", "succeeded", "failed", "retried"

TASKS = Counter(
    "tensorfleet_tasks",
    "Celery task deliveries by queue, task and state: started, failed and retried count every "
    "delivery; succeeded counts shard rows that became succeeded (equals Task rows succeeded).",
    ["queue", "task", "state"],
)
TASK_DURATION = Histogram(
    "tensorfleet_task_duration_seconds",
    "Training time of each succeeded shard (Task.duration_s), by queue.",
    ["queue"],
    # A shard trains for seconds to hours (the hard limit is CELERY_TASK_TIME_LIMIT).
    buckets=(0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, float("inf")),
)
SAMPLES = Counter(
    "tensorfleet_samples_trained",
    "Training samples of succeeded shards by queue; rate() of it is the fleet's samples per second.",
    ["queue"],
)


def queue_of(request, default: str = "") -> str:
    """The queue a Celery delivery came from: its routing key (Celery routes a task sent
    with ``queue=q`` with routing key q). Eager runs have none."""
    info = getattr(request, "delivery_info", None) or {}
    if info.get("routing_key"):
        return str(info["routing_key"])
    return "eager" if info.get("is_eager") or getattr(request, "is_eager", False) else default


def _current_queue() -> str:
    from celery import current_task

    return queue_of(current_task.request) if current_task else ""


def task_event(*, queue: str, task: str, state: str) -> None:
    TASKS.labels(queue=queue or "unknown", task=task, state=state).inc()


def shard_succeeded(*, job_id, samples: int, duration_s: float) -> None:
    """A shard's row became succeeded (called once its transaction has committed)."""
    queue = _current_queue()
    if not queue:  # outside a Celery task (a direct call): the job's queue
        queue = Job.objects.filter(id=job_id).values_list("queue", flat=True).first() or "unknown"
    task_event(queue=queue, task=TRAIN_SHARD, state=SUCCEEDED)
    TASK_DURATION.labels(queue=queue).observe(duration_s)
    SAMPLES.labels(queue=queue).inc(samples)


def on_shard_succeeded(sender, *, job_id, samples: int, duration_s: float, **kwargs) -> None:
    """``jobs.signals.shard_succeeded`` receiver (connected in MonitoringAppConfig.ready)."""
    shard_succeeded(job_id=job_id, samples=samples, duration_s=duration_s)
