from __future__ import annotations

from django.core.management.base import CommandError

from jobs.management.commands._common import JobCommand, get_job
from jobs.services import lifecycle


class Command(JobCommand):
    help = "Cancel a queued or running job."

    def add_arguments(self, parser):
        parser.add_argument("job_id")

    def handle(self, *args, **opts):
        job = get_job(opts["job_id"])
        try:
            lifecycle.job_cancel(job=job)
        except lifecycle.JobNotActive as exc:
            raise CommandError(f"cannot cancel job {job.id}: {exc}") from None
        self.stdout.write(f"cancelled job {job.id}")
