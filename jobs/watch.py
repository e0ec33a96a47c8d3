"""Follow a job (a progress bar) or a sweep (a line per trial event) from the command
line until it ends; stop following on Ctrl-C and say how to follow it again."""

from __future__ import annotations

import json
import sys
import time
from typing import NoReturn, TextIO

from tqdm import tqdm

from jobs.id_prefix import short_id
from jobs.models import FINAL_STATUSES, Job, Sweep
from jobs.services import sweeps

EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 2}
EXIT_INTERRUPTED = 130  # the shell's code for a command ended by SIGINT


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


def exit_code_for(job: Job | Sweep) -> int:
    """0 for success; failure and cancellation are errors to a CI/CD pipeline."""
    return EXIT_CODES.get(job.status, 3)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def trial_line(job: Job, sweep: Sweep) -> str:
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in sweeps.trial_params(job, sweep).items())
    line = f"trial {job.trial_number} ({params}): {job.status}"
    if job.error:
        line += f" ({job.error})"
    if job.completed_epochs:
        line += f", epoch {job.completed_epochs}/{job.epochs}, {sweep.metric} {_fmt(getattr(job, sweep.metric))}"
    return line


def watch_sweep(sweep_id, *, out, poll_s: float = 1.0) -> Sweep:
    """Print a line whenever a trial starts, ends or records an epoch; return the sweep once it has ended."""
    seen: dict = {}
    while True:
        sweep = Sweep.objects.get(id=sweep_id)
        for job in Job.objects.filter(sweep=sweep).order_by("trial_number"):
            state = (job.status, job.completed_epochs)
            if seen.get(job.id) != state:
                seen[job.id] = state
                out.write(trial_line(job, sweep) + "\n")
                out.flush()
        if sweep.status in FINAL_STATUSES:
            return sweep
        time.sleep(poll_s)


def sweep_summary(sweep: Sweep) -> list[str]:
    """The best trial, its spec and its checkpoint, as the lines a finished watch prints."""
    best = sweep.best_trial
    if best is None:
        return []
    lines = [
        f"best: trial {best.trial_number} (job {best.id}), {sweep.metric} {sweep.best_metric:.4f}",
        f"  spec: {json.dumps(sweeps.trial_spec(best), default=str)}",
    ]
    checkpoint = best.checkpoints.order_by("-kind", "-epoch").first()
    if checkpoint is not None:
        lines.append(
            f"  checkpoint: epoch {checkpoint.epoch} ({checkpoint.kind}) sha256 {checkpoint.sha256} — "
            f"manage.py download_checkpoint {best.id}"
        )
    return lines


def stop_watching(obj: Job | Sweep, *, out: TextIO) -> NoReturn:
    """After Ctrl-C: say that the job or sweep goes on and how to follow it again, then
    exit with 130 (no traceback: watching stopped, nothing failed)."""
    kind = "sweep" if isinstance(obj, Sweep) else "job"
    obj.refresh_from_db(fields=["status"])
    ident = short_id(type(obj).objects.all(), obj.pk)
    goes_on = "goes on" if obj.status not in FINAL_STATUSES else "has ended"
    out.write(
        f"\nstopped watching; {kind} {ident} {goes_on} ({obj.status}). "
        f"Watch it again with: python manage.py watch {ident}\n"
    )
    out.flush()
    raise SystemExit(EXIT_INTERRUPTED)
