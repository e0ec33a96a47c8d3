"""Helpers of the job commands; the ones every app's commands share live in
tensorfleet_site/command_helpers.py."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.management.base import CommandError

from jobs.models import Job
from tensorfleet_site.command_helpers import JobCommand, first_error_line, get_owner

__all__ = ["JobCommand", "first_error_line", "get_job", "get_owner"]


def get_job(job_id: str) -> Job:
    try:
        job = Job.objects.filter(id=job_id).first()
    except (DjangoValidationError, ValueError):
        job = None
    if job is None:
        raise CommandError(f"no job with id {job_id!r}")
    return job
