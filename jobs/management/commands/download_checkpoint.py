from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from jobs.management.commands._common import JobCommand, get_job
from storage_app.checksums import ChecksumMismatch, copy_verified
from storage_app.models import Checkpoint


class Command(JobCommand):
    help = "Download a job's checkpoint (the final one, or --epoch N) and check its sha256."

    def add_arguments(self, parser):
        parser.add_argument("job_id")
        parser.add_argument("--epoch", type=int, help="an epoch's checkpoint instead of the latest")
        parser.add_argument("-o", "--output", help="file or folder to write (default: current folder)")

    def handle(self, *args, **opts):
        job = get_job(opts["job_id"])
        checkpoints = job.checkpoints.all()
        if opts["epoch"] is not None:
            checkpoint = checkpoints.filter(epoch=opts["epoch"], kind=Checkpoint.Kind.EPOCH).first()
            if checkpoint is None:
                have = sorted(set(checkpoints.values_list("epoch", flat=True)))
                raise CommandError(
                    f"--epoch: job {job.id} has no checkpoint for epoch {opts['epoch']} (has {have or 'none'})"
                )
        else:
            checkpoint = (
                checkpoints.filter(kind=Checkpoint.Kind.FINAL).first() or checkpoints.order_by("-epoch").first()
            )
            if checkpoint is None:
                raise CommandError(f"job {job.id} has no checkpoint yet (status {job.status})")
        name = checkpoint.download_name
        target = Path(opts["output"] or ".")
        if target.is_dir():
            target = target / name
        if not target.parent.is_dir():
            raise CommandError(f"--output: folder {target.parent} does not exist")
        try:
            with checkpoint.file.open("rb") as src:
                copy_verified(src, target, sha256=checkpoint.sha256)
        except ChecksumMismatch as exc:
            raise CommandError(f"sha256 mismatch for {checkpoint.file.name}: {exc}") from None
        self.stdout.write(f"wrote {target} ({checkpoint.size} bytes, sha256 {checkpoint.sha256})")
