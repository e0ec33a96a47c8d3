"""The names Celery tasks are registered and sent under: one place, so the sender
(``jobs.orchestration``), the worker (``workers.tasks``), the reconciler's beat schedule
and the metrics agree without importing each other."""

from __future__ import annotations

TRAIN_SHARD = "workers.train_shard"
AGGREGATE_EPOCH = "workers.aggregate_epoch"
RECONCILE = "jobs.reconcile"
