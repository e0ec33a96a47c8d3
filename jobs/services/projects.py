"""Writes to projects, their members, and the project, tags and note of jobs and sweeps.

Who may call which is the API's check (``jobs.selectors``: the owner manages a project
and its members; a writer edits the jobs and sweeps in it). A leaf among the services:
the lifecycle calls ``tags_set`` when it creates a job.
"""

from __future__ import annotations

from typing import Any, Protocol

from django.db import IntegrityError, transaction

from jobs.models import Job, Project, ProjectMember, Sweep, Tag

ORGANISE_FIELDS = ("project", "tags", "note")


class Tagged(Protocol):
    """A row with a ``tags`` many-to-many to ``Tag``: a job, a sweep, a registered model."""

    tags: Any


class ProjectNameTaken(Exception):
    """The owner already has a project of that name."""


class NotAMember(Exception):
    """The owner is no member of their own project: they hold every right already."""


def project_create(*, owner, name: str, description: str = "") -> Project:
    try:
        with transaction.atomic():
            return Project.objects.create(owner=owner, name=name, description=description)
    except IntegrityError:
        raise ProjectNameTaken(f"You already have a project named {name!r}.") from None


def project_update(*, project: Project, changes: dict) -> Project:
    """Rename or describe a project (``changes``: name and/or description)."""
    for field in ("name", "description"):
        if field in changes:
            setattr(project, field, changes[field])
    try:
        with transaction.atomic():
            project.save()
    except IntegrityError:
        raise ProjectNameTaken(f"You already have a project named {project.name!r}.") from None
    return project


def project_delete(*, project: Project) -> None:
    """Delete a project and its memberships; its jobs and sweeps stay, in no project."""
    project.delete()


def member_set(*, project: Project, user, role: str) -> ProjectMember:
    """Give ``user`` the role (``read`` or ``write``) on the project, or change it."""
    if user.pk == project.owner_id:
        raise NotAMember("The project's owner holds every right already.")
    member, _ = ProjectMember.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return member


def member_remove(*, project: Project, user) -> bool:
    deleted, _ = ProjectMember.objects.filter(project=project, user=user).delete()
    return bool(deleted)


def tags_set(*, obj: Tagged, names: list[str]) -> None:
    """Label a job, a sweep or a registered model with exactly these tags (names already checked by
    ``jobs.projects.tags_clean``); a name seen for the first time gets its row."""
    existing = {tag.name: tag for tag in Tag.objects.filter(name__in=names)}
    missing = [Tag(name=name) for name in names if name not in existing]
    if missing:
        Tag.objects.bulk_create(missing, ignore_conflicts=True)  # a racing request may add one too
        existing = {tag.name: tag for tag in Tag.objects.filter(name__in=names)}
    obj.tags.set([existing[name] for name in names])


def job_organise(*, job: Job, changes: dict) -> Job:
    """Set a job's project, tags and/or note (validated by ``jobs.projects``); nothing else."""
    with transaction.atomic():
        _organise(job, changes)
    return job


def sweep_organise(*, sweep: Sweep, changes: dict) -> Sweep:
    """Set a sweep's project, tags and/or note. A new project takes the sweep's trials
    along, so whoever may see the sweep sees its trials."""
    with transaction.atomic():
        _organise(sweep, changes)
        if "project" in changes:
            Job.objects.filter(sweep=sweep).update(project=changes["project"])
    return sweep


def _organise(obj: Job | Sweep, changes: dict) -> None:
    unknown = set(changes) - set(ORGANISE_FIELDS)
    if unknown:
        raise ValueError(f"only {', '.join(ORGANISE_FIELDS)} change here, not {', '.join(sorted(unknown))}")
    fields = [field for field in ("project", "note") if field in changes]
    for field in fields:
        setattr(obj, field, changes[field])
    if fields:
        obj.save(update_fields=[*fields, "updated_at"])
    if "tags" in changes:
        tags_set(obj=obj, names=changes["tags"])
