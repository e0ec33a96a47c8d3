"""The classes of a failure: the names a worker reports (``workers.errors.classify``)
and the lifecycle reads (``jobs.services.failures``, ``jobs.selectors``).

The names live here, below both, so the lifecycle can tell them apart without
importing workers (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

INFRASTRUCTURE = "infrastructure"  # storage, broker or database unreachable: retried with backoff
WORKER_LOST = "worker_lost"  # the process died: the reconciler sends the shard again, a few times
TIME_LIMIT = "time_limit"  # the same work would take as long again
OUT_OF_MEMORY = "out_of_memory"  # the same work would need as much again
USER_ERROR = "user_error"  # the spec or the data is wrong
DIVERGED = "diverged"  # the loss or the weights became NaN or infinite: the spec trains to nothing

# Classes a resume of the same spec cannot fix, and what to do instead. A resume starts
# again from the last checkpoint with the same hyperparameters, and training is
# deterministic: it would reach the same NaN at the same step.
RESUME_WILL_NOT_HELP = {
    DIVERGED: (
        "the job diverged (its loss or weights became NaN or infinite); resuming the same spec "
        "would diverge again: submit it again with a lower learning_rate"
    ),
}
