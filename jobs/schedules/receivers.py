"""A scheduled run's job ended: judge the run on the control queue once that committed
(the signal may come from a worker's aggregate; the promotion copies a checkpoint)."""

from __future__ import annotations

from django.db import transaction

from jobs.schedules import services, tasks


def on_job_ended(sender, *, job_id, **kwargs) -> None:
    run = services.run_for_job(job_id)
    if run is not None:
        run_id = run.id
        transaction.on_commit(lambda: tasks.judge.delay(run_id), robust=True)
