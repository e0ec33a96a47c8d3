"""API tokens: made here, shown once, stored only as a digest."""

from __future__ import annotations

from knox.models import AuthToken


def token_create(*, user, replace: bool = False) -> str:
    """A new API token for ``user``; returns its key, which cannot be read back later.
    ``replace`` revokes the user's other tokens first."""
    if replace:
        AuthToken.objects.filter(user=user).delete()
    _, key = AuthToken.objects.create(user=user, expiry=None)
    return key
