"""Helpers shared by every app's management commands: one readable line per bad input."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import OperationalError


def first_error_line(errors: dict, names: dict[str, str] | None = None) -> str:
    """Turn serializer errors into 'option: message' lines, using the command's option names."""
    names = names or {}
    lines = []
    for field, messages in errors.items():
        if isinstance(messages, dict):
            messages = [f"{k}: {v}" for k, v in messages.items()]
        label = names.get(field, field)
        lines.append(f"{label}: {' '.join(str(m) for m in messages)}")
    return "; ".join(lines)


def get_owner(username: str | None):
    User = get_user_model()
    if username:
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r} (create one with createsuperuser)")
        return user
    user = User.objects.filter(is_superuser=True).order_by("id").first()
    if user is None:
        raise CommandError("no user to own the job: pass --owner or create one with createsuperuser")
    return user


class JobCommand(BaseCommand):
    """A command whose database trouble is one readable line, not a traceback."""

    def execute(self, *args, **options):
        try:
            return super().execute(*args, **options)
        except OperationalError as exc:
            where = settings.DATABASES["default"].get("NAME")
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CommandError(f"cannot use the database {where}: {first}") from None
