"""Follow a job from the command line with a progress bar until it ends."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

from jobs.models import FINAL_STATUSES, Job


def watch_job(job_id, *, out: TextIO = sys.stderr, poll_s: float = 0.5, timeout_s: float | None = None) -> Job:
    """Poll the job's row and draw epoch, loss and accuracy; return the job once it has ended."""
    job = Job.objects.get(id=job_id)
    deadline = time.monotonic() + timeout_s if timeout_s else None
    with tqdm(total=job.total_tasks, unit="task", desc=f"job {str(job.id)[:8]}", file=out, dynamic_ncols=True) as bar:
        while True:
            job.refresh_from_db()
            bar.update(job.completed_tasks - bar.n)
            postfix = {"status": job.status, "epoch": f"{job.completed_epochs}/{job.epochs}"}
            if job.train_loss is not None:
                postfix["loss"] = f"{job.train_loss:.4f}"
            if job.val_accuracy is not None:
                postfix["val_acc"] = f"{job.val_accuracy:.4f}"
            bar.set_postfix(postfix, refresh=True)
            if job.status in FINAL_STATUSES:
                return job
            if deadline and time.monotonic() > deadline:
                raise TimeoutError(f"job {job.id} still {job.status} after {timeout_s}s")
            time.sleep(poll_s)


def exit_code_for(job: Job) -> int:
    """0 for success; failure and cancellation are errors to a CI/CD pipeline."""
    return {"succeeded": 0, "failed": 1, "cancelled": 2}.get(job.status, 3)
