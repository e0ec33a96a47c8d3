"""Register one of a job's checkpoints as the next version of a model (POST
/api/v1/models/<name>/versions), creating the model when it is new."""

from __future__ import annotations

from django.core.management.base import CommandError

from jobs.management.commands._common import JobCommand, get_job, get_owner
from jobs.registry import services
from jobs.registry.models import ModelVersion


class Command(JobCommand):
    help = (
        "Register a job's checkpoint (best, final or an epoch) as version n+1 of a model; --alias moves an alias to it."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", help="the registered model's name (created if new)")
        parser.add_argument("--job", required=True, help="the job's id")
        parser.add_argument("--checkpoint", choices=ModelVersion.Source.values, default=ModelVersion.Source.BEST)
        parser.add_argument("--epoch", type=int, help="with --checkpoint epoch")
        parser.add_argument("--description", default="")
        parser.add_argument("--alias", help="point this alias (e.g. staging) at the new version")
        parser.add_argument("--owner", help="username (default: the job's owner)")

    def handle(self, *args, **opts):
        job = get_job(opts["job"])
        owner = get_owner(opts["owner"]) if opts["owner"] else job.owner
        if job.owner_id != owner.pk:
            raise CommandError(f"job {job.id} is not {owner.get_username()}'s")
        if (opts["checkpoint"] == ModelVersion.Source.EPOCH) != (opts["epoch"] is not None):
            raise CommandError("--epoch goes with --checkpoint epoch, and only with it")
        try:
            model = services.model_get_or_create(owner=owner, name=opts["name"])
            version = services.version_create(
                model=model, job=job, source=opts["checkpoint"], epoch=opts["epoch"], description=opts["description"]
            )
            if opts["alias"]:
                services.alias_set(model=model, name=opts["alias"], version=version.version)
        except services.RegistryError as exc:
            raise CommandError(f"--{exc.field}: {exc}") from None
        line = f"registered {model.name} version {version.version} (sha256 {version.checkpoint_sha256})"
        self.stdout.write(line + (f"; {opts['alias']} -> {version.version}" if opts["alias"] else ""))
