"""Point an alias of a registered model at one of its versions (PUT
/api/v1/models/<name>/aliases/<alias>)."""

from __future__ import annotations

from django.core.management.base import CommandError

from jobs.management.commands._common import JobCommand, get_owner
from jobs.registry import services
from jobs.registry.models import RegisteredModel


class Command(JobCommand):
    help = "Point an alias (e.g. champion) of a registered model at a version, atomically."

    def add_arguments(self, parser):
        parser.add_argument("name", help="the registered model's name")
        parser.add_argument("alias")
        parser.add_argument("version", type=int)
        parser.add_argument("--owner", help="username (default: the first superuser)")

    def handle(self, *args, **opts):
        owner = get_owner(opts["owner"])
        model = RegisteredModel.objects.filter(owner=owner, name=opts["name"]).first()
        if model is None:
            raise CommandError(f"{owner.get_username()} has no model named {opts['name']!r}")
        try:
            _, previous = services.alias_set(model=model, name=opts["alias"], version=opts["version"])
        except services.RegistryError as exc:
            raise CommandError(f"{exc.field}: {exc}") from None
        moved = "new" if previous is None else f"was {previous}"
        self.stdout.write(f"{model.name}@{opts['alias']} -> version {opts['version']} ({moved})")
