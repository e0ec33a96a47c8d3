"""Reads: who sees which jobs and sweeps, and the questions the lifecycle asks of them.

One rule per question, used by the API, the dashboard, the commands and the workers.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from jobs.failure_classes import RESUME_WILL_NOT_HELP
from jobs.models import EpochMetric, Job, Status, Sweep, Task
from storage_app.models import Checkpoint


def jobs_visible_to(user) -> QuerySet[Job]:
    """The API's rule: owners see their own jobs only (staff too)."""
    if not user.is_authenticated:
        return Job.objects.none()
    return Job.objects.filter(owner=user)


def jobs_overseen_by(user) -> QuerySet[Job]:
    """The dashboard's and the overview's rule: staff oversee every job, everyone else their own."""
    if user.is_authenticated and user.is_staff:
        return Job.objects.all()
    return jobs_visible_to(user)


def sweeps_visible_to(user) -> QuerySet[Sweep]:
    """Owners see their own sweeps only."""
    if not user.is_authenticated:
        return Sweep.objects.none()
    return Sweep.objects.filter(owner=user)


def trials_of(sweep: Sweep) -> QuerySet[Job]:
    """A sweep's trials in the order they were planned."""
    return Job.objects.filter(sweep=sweep).order_by("trial_number")


def job_resume_refusal(job: Job) -> str | None:
    """Why the job cannot resume, or None when it can: cancelled or failed, with epochs
    left, and not failed in a way the same spec would fail again (a diverged job).
    ``lifecycle.job_resume`` refuses with this reason; the dashboard hides Resume."""
    if job.status not in (Status.CANCELLED, Status.FAILED):
        return f"job is {job.status}; only cancelled or failed jobs resume"
    if job.completed_epochs >= job.epochs:
        return "every epoch has completed; nothing to resume"
    if job.status == Status.FAILED and job.error_class in RESUME_WILL_NOT_HELP:
        return RESUME_WILL_NOT_HELP[job.error_class]
    return None


def job_is_resumable(job: Job) -> bool:
    return job_resume_refusal(job) is None


def checkpoint_for_download(job: Job, checkpoint_id) -> Checkpoint | None:
    """One of a job's checkpoints (the caller has checked the job is visible)."""
    return Checkpoint.objects.filter(job=job, id=checkpoint_id).first()


@dataclass(frozen=True)
class EpochShards:
    """An epoch's task rows in shard order, and whether the epoch is already recorded."""

    job: Job | None
    tasks: list[Task]
    recorded: bool


def epoch_shards(*, job_id, epoch: int) -> EpochShards:
    job = Job.objects.select_related("dataset_ref").filter(id=job_id).first()
    if job is None:
        return EpochShards(job=None, tasks=[], recorded=False)
    if EpochMetric.objects.filter(job=job, epoch=epoch).exists():
        return EpochShards(job=job, tasks=[], recorded=True)
    return EpochShards(job=job, tasks=list(job.tasks.filter(epoch=epoch).order_by("shard")), recorded=False)


def epoch_all_succeeded(*, job_id, epoch: int) -> bool:
    return not Task.objects.filter(job_id=job_id, epoch=epoch).exclude(status=Status.SUCCEEDED).exists()
