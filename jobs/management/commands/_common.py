"""Helpers of the job commands; the ones every app's commands share live in
tensorfleet_site/command_helpers.py."""

from __future__ import annotations

from django.core.management.base import CommandError

from jobs.id_prefix import IdAmbiguous, IdNotFound, by_id_or_prefix
from jobs.models import Job
from tensorfleet_site.command_helpers import JobCommand, first_error_line, get_owner

__all__ = ["JobCommand", "first_error_line", "get_job", "get_owner"]


def get_job(job_id: str) -> Job:
    """A job by its id or a unique prefix of 8 or more characters (as the commands print)."""
    try:
        return by_id_or_prefix(Job.objects.all(), job_id, noun="job")
    except (IdNotFound, IdAmbiguous) as exc:
        raise CommandError(str(exc)) from None
