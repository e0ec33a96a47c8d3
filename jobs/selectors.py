"""Reads: who sees which jobs and sweeps, and the questions the lifecycle asks of them.

One rule per question, used by the API, the dashboard, the commands and the workers.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet

from jobs.failure_classes import RESUME_WILL_NOT_HELP
from jobs.models import EpochMetric, Job, Project, ProjectMember, Status, Sweep, Task, TaskLog
from storage_app.models import Checkpoint


def projects_visible_to(user) -> QuerySet[Project]:
    """Projects the user owns or is a member of (either role)."""
    if not user.is_authenticated:
        return Project.objects.none()
    member_of = ProjectMember.objects.filter(user=user).values("project_id")
    return Project.objects.filter(Q(owner=user) | Q(id__in=member_of))


def projects_writable_by(user) -> QuerySet[Project]:
    """Projects the user may submit into and whose jobs and sweeps they may change:
    their own, and those they are a ``write`` member of."""
    if not user.is_authenticated:
        return Project.objects.none()
    writer_of = ProjectMember.objects.filter(user=user, role=ProjectMember.Role.WRITE).values("project_id")
    return Project.objects.filter(Q(owner=user) | Q(id__in=writer_of))


def jobs_visible_to(user) -> QuerySet[Job]:
    """The API's rule: a user sees their own jobs and the jobs of the projects they own or
    are a member of (read or write). Staff see their own too (the dashboard oversees all)."""
    if not user.is_authenticated:
        return Job.objects.none()
    return Job.objects.filter(Q(owner=user) | Q(project__in=projects_visible_to(user).values("id")))


def jobs_writable_by(user) -> QuerySet[Job]:
    """Jobs the user may cancel, resume, delete and edit: their own, and those of the
    projects they own or are a ``write`` member of. A job visible but not here is a 403."""
    if not user.is_authenticated:
        return Job.objects.none()
    return Job.objects.filter(Q(owner=user) | Q(project__in=projects_writable_by(user).values("id")))


def job_may_change(user, job: Job) -> bool:
    """Whether the user may cancel, resume, delete or edit a job they can see: a writer
    (``jobs_writable_by``), or staff, who oversee every job. The API answers 403 to a
    reader, and the dashboard hides and refuses the buttons with this same rule."""
    if not user.is_authenticated:
        return False
    if user.is_staff or job.owner_id == user.pk:
        return True  # asked of the row in hand, so a job deleted meanwhile is the caller's 404, not a 403
    return job.project_id is not None and projects_writable_by(user).filter(id=job.project_id).exists()


def jobs_overseen_by(user) -> QuerySet[Job]:
    """The dashboard's and the overview's rule: staff oversee every job, everyone else what they see."""
    if user.is_authenticated and user.is_staff:
        return Job.objects.all()
    return jobs_visible_to(user)


def sweeps_visible_to(user) -> QuerySet[Sweep]:
    """Owners see their own sweeps, and members the sweeps of their projects."""
    if not user.is_authenticated:
        return Sweep.objects.none()
    return Sweep.objects.filter(Q(owner=user) | Q(project__in=projects_visible_to(user).values("id")))


def sweep_may_change(user, sweep: Sweep) -> bool:
    """Whether the user may cancel and edit the sweep: its owner, a writer of its project, staff."""
    if not user.is_authenticated:
        return False
    if user.is_staff or sweep.owner_id == user.pk:
        return True
    return sweep.project_id is not None and projects_writable_by(user).filter(id=sweep.project_id).exists()


def project_role(user, project: Project) -> str | None:
    """``owner``, ``write``, ``read``, or None when the user has no access."""
    if not user.is_authenticated:
        return None
    if project.owner_id == user.pk:
        return "owner"
    return ProjectMember.objects.filter(project=project, user=user).values_list("role", flat=True).first()


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


def task_log_of(job: Job, *, epoch: int, kind: str, shard: int = 0) -> TaskLog:
    """A shard's or an aggregate's log; an empty one (not stored) before it has a line."""
    found = TaskLog.objects.filter(job=job, epoch=epoch, kind=kind, shard=shard).first()
    return found or TaskLog(job=job, epoch=epoch, kind=kind, shard=shard, text="", lines=0, dropped=0)


def checkpoint_for_download(job: Job, checkpoint_id) -> Checkpoint | None:
    """One of a job's checkpoints (the caller has checked the job is visible)."""
    return Checkpoint.objects.filter(job=job, id=checkpoint_id).first()


@dataclass(frozen=True)
class EpochShards:
    """A round's task rows in shard order, and whether the round is already recorded."""

    job: Job | None
    tasks: list[Task]
    recorded: bool


def _recorded(job: Job, epoch: int, round: int) -> bool:
    """A round inside its epoch is recorded on the job (``completed_rounds``); the round
    that ends an epoch by the epoch's metrics row (recorded once, by ``epoch_record``,
    after the round itself: an aggregate retried in between records the epoch)."""
    if round >= job.rounds_per_epoch:
        return EpochMetric.objects.filter(job=job, epoch=epoch).exists()
    return (epoch - 1) * job.rounds_per_epoch + round <= job.completed_rounds


def epoch_shards(*, job_id, epoch: int, round: int = 1) -> EpochShards:
    """One query for the rows and their job (a round's fixed cost counts), a second for a
    job without rows yet, a third for the epoch's metrics row when the round ends it."""
    tasks = list(
        Task.objects.select_related("job", "job__dataset_ref")
        .filter(job_id=job_id, epoch=epoch, round=round)
        .order_by("shard")
    )
    job = tasks[0].job if tasks else Job.objects.select_related("dataset_ref").filter(id=job_id).first()
    if job is None:
        return EpochShards(job=None, tasks=[], recorded=False)
    for task in tasks:
        task.job = job  # one object: what the aggregate reads of the job is the same for every row
    if _recorded(job, epoch, round):
        return EpochShards(job=job, tasks=[], recorded=True)
    return EpochShards(job=job, tasks=tasks, recorded=False)


def round_recorded(*, job_id, epoch: int, round: int = 1) -> bool:
    job = Job.objects.filter(id=job_id).first()
    return job is not None and _recorded(job, epoch, round)


def epoch_all_succeeded(*, job_id, epoch: int, round: int = 1) -> bool:
    return not Task.objects.filter(job_id=job_id, epoch=epoch, round=round).exclude(status=Status.SUCCEEDED).exists()


def epoch_tasks(*, job_id, epoch: int) -> list[Task]:
    """Every shard row of an epoch, all its rounds: the epoch's train loss and samples."""
    return list(Task.objects.filter(job_id=job_id, epoch=epoch).order_by("round", "shard"))
