from __future__ import annotations

import hashlib
from pathlib import Path

from django.core.management.base import CommandError

from jobs.management.commands._common import JobCommand, get_job
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
        name = f"{job.id}-{'final' if checkpoint.kind == 'final' else f'epoch-{checkpoint.epoch}'}.safetensors"
        target = Path(opts["output"] or ".")
        if target.is_dir():
            target = target / name
        if not target.parent.is_dir():
            raise CommandError(f"--output: folder {target.parent} does not exist")
        digest = hashlib.sha256()
        tmp = target.with_name(target.name + ".part")
        with checkpoint.file.open("rb") as src, open(tmp, "wb") as dst:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                digest.update(chunk)
                dst.write(chunk)
        if digest.hexdigest() != checkpoint.sha256:
            tmp.unlink()
            raise CommandError(
                f"sha256 mismatch for {checkpoint.file.name}: got {digest.hexdigest()}, recorded {checkpoint.sha256}"
            )
        tmp.replace(target)
        self.stdout.write(f"wrote {target} ({checkpoint.size} bytes, sha256 {checkpoint.sha256})")
