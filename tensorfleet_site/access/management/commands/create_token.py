"""Print a new API token for a user. The key is shown this once: only its digest is stored."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from tensorfleet_site.access.services import token_create


class Command(BaseCommand):
    help = "Print a new API token for USERNAME (shown once; only its digest is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--replace", action="store_true", help="revoke the user's other tokens first")

    def handle(self, *args, **opts):
        user = get_user_model().objects.filter(username=opts["username"]).first()
        if user is None:
            raise CommandError(f"no user named {opts['username']!r} (create one with createsuperuser)")
        key = token_create(user=user, replace=opts["replace"])
        self.stdout.write(key)
