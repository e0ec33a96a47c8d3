"""Gauges computed when the API's /metrics is scraped: jobs by status, the running
jobs' epoch, loss and accuracy, queue depth and workers online.

Computed at scrape time from the database and the broker, so they are right whichever
API replica or process answers, and a finished job's series simply stop: only running
jobs are read (Job has an index on status), which bounds the label cardinality.
A source that fails (database, broker) drops its series and reports
``tensorfleet_metrics_source_up{source=...} 0`` rather than failing the scrape.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.db.models import Count, OuterRef, Subquery
from kombu.exceptions import OperationalError as KombuError
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

JOB_LABELS = ["job_id", "queue", "model"]
# (metric, help, Job field or annotation)
JOB_GAUGES = [
    ("tensorfleet_job_current_epoch", "Last epoch started by a running job (1-based).", "current_epoch"),
    ("tensorfleet_job_epochs", "Epochs a running job trains in all.", "epochs"),
    ("tensorfleet_job_progress", "Share of a running job's shard tasks completed (0..1).", "progress"),
    ("tensorfleet_job_train_loss", "Training loss of a running job's last completed epoch.", "train_loss"),
    ("tensorfleet_job_val_loss", "Validation loss of a running job's last completed epoch.", "val_loss"),
    ("tensorfleet_job_val_accuracy", "Validation accuracy of a running job's last completed epoch.", "val_accuracy"),
    (
        "tensorfleet_job_samples_per_second",
        "Training samples per second of a running job's last completed epoch (all shards).",
        "samples_per_s",
    ),
]


def _families():
    jobs = GaugeMetricFamily("tensorfleet_jobs", "Jobs by status.", labels=["status"])
    per_job = {name: GaugeMetricFamily(name, doc, labels=JOB_LABELS) for name, doc, _ in JOB_GAUGES}
    depth = GaugeMetricFamily("tensorfleet_queue_depth", "Messages waiting in each queue.", labels=["queue"])
    online = GaugeMetricFamily("tensorfleet_workers_online", "Celery workers answering the broker.")
    workers = GaugeMetricFamily(
        "tensorfleet_queue_workers", "Celery workers answering the broker that consume each queue.", labels=["queue"]
    )
    up = GaugeMetricFamily(
        "tensorfleet_metrics_source_up", "1 if this scrape could read the source, else 0.", labels=["source"]
    )
    return jobs, per_job, depth, online, workers, up


class FleetCollector:
    """A prometheus_client collector (registered on its own registry, see ``fleet_registry``)."""

    def describe(self):
        jobs, per_job, depth, online, workers, up = _families()
        return [jobs, *per_job.values(), depth, online, workers, up]

    def collect(self):
        jobs, per_job, depth, online, workers, up = _families()
        up.add_metric(["database"], self._collect_jobs(jobs, per_job))
        up.add_metric(["broker"], self._collect_broker(depth, online, workers))
        return [jobs, *per_job.values(), depth, online, workers, up]

    def _collect_jobs(self, jobs, per_job) -> int:
        from jobs.models import EpochMetric, Job, Status

        try:
            counts = dict(Job.objects.order_by().values_list("status").annotate(n=Count("id")))
            latest_rate = EpochMetric.objects.filter(job=OuterRef("pk")).order_by("-epoch").values("samples_per_s")[:1]
            running = list(
                Job.objects.filter(status=Status.RUNNING)
                .order_by()
                .annotate(samples_per_s=Subquery(latest_rate))
                .values(
                    "id",
                    "queue",
                    "model_type",
                    "current_epoch",
                    "epochs",
                    "completed_tasks",
                    "total_tasks",
                    "train_loss",
                    "val_loss",
                    "val_accuracy",
                    "samples_per_s",
                )
            )
        except DatabaseError as exc:
            logger.warning("metrics: the database did not answer: %s", exc)
            return 0
        for status in Status.values:
            jobs.add_metric([status], counts.get(status, 0))
        for row in running:
            row["progress"] = row["completed_tasks"] / row["total_tasks"] if row["total_tasks"] else 0.0
            labels = [str(row["id"]), row["queue"], row["model_type"]]
            for name, _, field in JOB_GAUGES:
                if row[field] is not None:  # no loss or accuracy before the first epoch ends
                    per_job[name].add_metric(labels, row[field])
        return 1

    def _collect_broker(self, depth, online, workers) -> int:
        from monitoring_app import broker_status as broker

        try:
            depths = broker.queue_depths()
            if depths is None:  # not a Redis broker: only workers online
                broker.broker_ping()
            answered = broker.online_workers()
        except (RedisError, KombuError, OSError) as exc:
            logger.warning("metrics: the broker did not answer: %s", exc)
            return 0
        for queue, n in (depths or {}).items():
            depth.add_metric([queue], n)
        online.add_metric([], len(answered))
        for queue in sorted({*broker.monitored_queues(), *(q for w in answered for q in w.queues)}):
            workers.add_metric([queue], sum(queue in w.queues for w in answered))
        return 1


fleet_registry = CollectorRegistry(auto_describe=True)
fleet_registry.register(FleetCollector())
