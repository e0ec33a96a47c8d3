"""Events of a job's life that other parts observe without the lifecycle importing them.

* ``shard_succeeded(job_id, samples, duration_s)``: a shard's row became succeeded
  (sent once its transaction has committed); monitoring_app counts it.
* ``job_ended(job_id)``: a job reached a final status; the sweep scheduler starts the
  next trials of its sweep (``jobs.services.sweeps``).
"""

from __future__ import annotations

from django.dispatch import Signal

shard_succeeded = Signal()
job_ended = Signal()
