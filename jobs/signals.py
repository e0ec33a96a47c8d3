"""Events of a job's life that other parts observe without the lifecycle importing them.

* ``shard_succeeded(job_id, samples, duration_s)``: a shard's row became succeeded
  (sent once its transaction has committed); monitoring_app counts it.
* ``job_ended(job_id)``: a job reached a final status; the sweep scheduler starts the
  next trials of its sweep (``jobs.services.sweeps``); the webhooks send job.succeeded,
  job.failed or job.cancelled (``jobs.webhooks``), the schedules judge their runs.
* ``sweep_finished(sweep_id)``: a sweep ended with its every trial (sent once that has
  committed, its best trial known); the webhooks send sweep.finished.
"""

from __future__ import annotations

from django.dispatch import Signal

shard_succeeded = Signal()
job_ended = Signal()
sweep_finished = Signal()
