"""Reads: what a user may see."""

from __future__ import annotations

from django.db.models import QuerySet

from jobs.models import Job


def jobs_visible_to(user) -> QuerySet[Job]:
    """Owners see their own jobs only."""
    if not user.is_authenticated:
        return Job.objects.none()
    return Job.objects.filter(owner=user)
