"""``Authorization: Token <key>`` for the API: the key is checked against the digest
django-rest-knox stores (never the key itself), and an address that keeps presenting
bad keys is refused for a while."""

from __future__ import annotations

import re

from django.utils.translation import gettext_lazy as _
from knox.auth import TokenAuthentication as KnoxTokenAuthentication
from rest_framework.authentication import get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, Throttled

from tensorfleet_site.access.throttling import FailedCredentialsThrottle

# Keys are lowercase hex: 64 characters from knox, 40 for one carried over from DRF's
# authtoken table. Anything else is refused before it reaches the database (a NUL
# byte is an error in PostgreSQL, non-UTF-8 bytes one in knox's decode).
KEY_FORMAT = re.compile(rb"[0-9a-f]{40,128}")


class TokenAuthentication(KnoxTokenAuthentication):
    def authenticate(self, request):
        words = get_authorization_header(request).split()
        if not words or words[0].lower() != self.authenticate_header(request).encode().lower():
            return None  # no token offered: another class (the session) may authenticate
        throttle = FailedCredentialsThrottle()
        # Over the limit, a right key is refused as well: answering it would tell a
        # guesser which of its guesses was right.
        if throttle.blocked(request):
            raise Throttled(
                wait=throttle.wait(),
                detail=str(_("Too many requests with a bad token from this address.")),
            )
        try:
            return super().authenticate(request)
        except AuthenticationFailed:
            throttle.record_failure(request)
            raise

    def authenticate_credentials(self, token: bytes):
        if not KEY_FORMAT.fullmatch(token):
            raise AuthenticationFailed(_("Invalid token."))
        return super().authenticate_credentials(token)
