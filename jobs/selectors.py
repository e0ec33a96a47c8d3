"""Reads: what a user may see."""

from __future__ import annotations

from django.db.models import QuerySet

from jobs.models import Job, Sweep


def jobs_visible_to(user) -> QuerySet[Job]:
    """Owners see their own jobs only."""
    if not user.is_authenticated:
        return Job.objects.none()
    return Job.objects.filter(owner=user)


def sweeps_visible_to(user) -> QuerySet[Sweep]:
    """Owners see their own sweeps only."""
    if not user.is_authenticated:
        return Sweep.objects.none()
    return Sweep.objects.filter(owner=user)
