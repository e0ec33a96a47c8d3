"""Control tasks: run on the `control` queue, never behind training work."""

from __future__ import annotations

from jobs.reconcile import reconcile as reconcile_now
from jobs.task_names import RECONCILE
from tensorfleet_site.celery import app


@app.task(name=RECONCILE, ignore_result=True, soft_time_limit=60, time_limit=90)
def reconcile() -> dict[str, int]:
    return reconcile_now()
