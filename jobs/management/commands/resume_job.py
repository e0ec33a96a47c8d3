from __future__ import annotations

from django.core.management.base import CommandError

from jobs.management.commands._common import JobCommand, get_job
from jobs.services import lifecycle


class Command(JobCommand):
    help = "Resume a cancelled or failed job from its last completed epoch's checkpoint."

    def add_arguments(self, parser):
        parser.add_argument("job_id")

    def handle(self, *args, **opts):
        job = get_job(opts["job_id"])
        try:
            epoch = lifecycle.job_resume(job=job)
        except lifecycle.JobNotResumable as exc:
            raise CommandError(f"cannot resume job {job.id}: {exc}") from None
        self.stdout.write(f"resumed job {job.id} at epoch {epoch}")
