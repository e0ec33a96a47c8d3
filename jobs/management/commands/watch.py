"""Follow a job (a progress bar) or a sweep (its trials) until it ends, by its id or a
unique prefix of 8 or more characters; Ctrl-C stops watching and leaves it running."""

from __future__ import annotations

from django.core.management.base import CommandError

from jobs.id_prefix import IdAmbiguous, IdNotFound, by_id_or_prefix
from jobs.management.commands._common import JobCommand
from jobs.models import Job, Sweep
from jobs.watch import exit_code_for, stop_watching, sweep_summary, watch_job, watch_sweep


def find(ident: str) -> Job | Sweep:
    """The job, or else the sweep, whose id is or starts with ``ident``."""
    found: list[Job | Sweep] = []
    for queryset, noun in ((Job.objects.all(), "job"), (Sweep.objects.all(), "sweep")):
        try:
            found.append(by_id_or_prefix(queryset, ident, noun=noun))
        except IdNotFound:
            continue
        except IdAmbiguous as exc:
            raise CommandError(str(exc)) from None
    if not found:
        raise CommandError(f"no job or sweep with an id starting {ident!r} (give 8 or more of its characters)")
    if len(found) > 1:
        raise CommandError(f"{ident} starts both job {found[0].pk} and sweep {found[1].pk}; give more characters")
    return found[0]


class Command(JobCommand):
    help = (
        "Follow a job or a sweep until it ends (its id, or a unique prefix of 8 or more characters); exit 0 only "
        "if it succeeds. Ctrl-C stops watching; the job goes on."
    )

    def add_arguments(self, parser):
        parser.add_argument("id", help="a job's or a sweep's id, or a unique prefix of 8 or more characters")

    def handle(self, *args, **opts):
        target = find(opts["id"])
        try:
            if isinstance(target, Sweep):
                target = watch_sweep(target.id, out=self.stdout)
            else:
                target = watch_job(target.id, out=self.stderr._out)
        except KeyboardInterrupt:  # Ctrl-C stops the watching, not the job
            stop_watching(target, out=self.stderr)
        kind = "sweep" if isinstance(target, Sweep) else "job"
        if isinstance(target, Sweep):
            for line in sweep_summary(target):
                self.stdout.write(line)
        code = exit_code_for(target)
        if code == 0:
            accuracy = getattr(target, "val_accuracy", None)
            tail = f": val_accuracy {accuracy:.4f}" if accuracy is not None else ""
            self.stdout.write(self.style.SUCCESS(f"{kind} {target.id} succeeded{tail}"))
            return
        error = f": {target.error}" if target.error else ""
        raise CommandError(f"{kind} {target.id} {target.status}{error}", returncode=code)
