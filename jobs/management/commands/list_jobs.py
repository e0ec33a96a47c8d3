from __future__ import annotations

from django.core.management.base import CommandError

from jobs.management.commands._common import JobCommand
from jobs.models import Job, Status


class Command(JobCommand):
    help = "List jobs, newest first, as a table."

    def add_arguments(self, parser):
        parser.add_argument("--status", help="queued, running, succeeded, failed or cancelled")
        parser.add_argument("--owner", help="only this user's jobs")
        parser.add_argument("--limit", type=int, default=20)

    def handle(self, *args, **opts):
        jobs = Job.objects.select_related("owner").order_by("-created_at")
        if opts["status"]:
            if opts["status"] not in Status.values:
                raise CommandError(f"--status: {opts['status']!r} is not one of {', '.join(Status.values)}")
            jobs = jobs.filter(status=opts["status"])
        if opts["owner"]:
            jobs = jobs.filter(owner__username=opts["owner"])
        if opts["limit"] < 1:
            raise CommandError("--limit: must be at least 1")
        rows = [("ID", "STATUS", "PROGRESS", "EPOCH", "MODEL", "DATASET", "VAL_ACC", "OWNER", "CREATED")]
        for job in jobs[: opts["limit"]]:
            rows.append(
                (
                    str(job.id),
                    job.status,
                    f"{job.progress:.0%}",
                    f"{job.completed_epochs}/{job.epochs}",
                    job.model_type,
                    job.dataset,
                    "-" if job.val_accuracy is None else f"{job.val_accuracy:.4f}",
                    job.owner.get_username(),
                    job.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for row in rows:
            self.stdout.write("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
