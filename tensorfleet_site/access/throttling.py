"""How many bad API credentials one address may present, and which address a request
comes from (one answer for the API's throttle and the admin's lockouts)."""

from __future__ import annotations

from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle


def client_address(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or with NUM_PROXIES trusted proxies in front,
    the address the nearest of them saw. django-axes calls this too, so a login lockout
    and the API throttle count the same address."""
    return BaseThrottle().get_ident(request)  # type: ignore[arg-type]  # it reads only request.META


class FailedCredentialsThrottle(SimpleRateThrottle):
    """Counts the API tokens that failed to authenticate, per client address, at the rate
    ``DEFAULT_THROTTLE_RATES["failed_credentials"]``.

    DRF checks its throttles after authentication, so a request whose token is wrong
    never reaches them: the authentication class asks ``blocked`` before it looks at the
    token and calls ``record_failure`` after a miss. Unlike a view throttle it counts
    only failures; a valid token costs nothing. The count lives in Django's cache (per
    process with the default local-memory cache; docs/DEPLOY.md)."""

    scope = "failed_credentials"
    num_requests: int  # set by SimpleRateThrottle from the rate
    duration: int

    def get_cache_key(self, request, view=None) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def blocked(self, request) -> bool:
        """Whether this address has used up its failures for now."""
        self.key = self.get_cache_key(request)
        self.now = self.timer()
        self.history = [t for t in self.cache.get(self.key, []) if t > self.now - self.duration]
        return len(self.history) >= self.num_requests

    def record_failure(self, request) -> None:
        """Count one failed credential (call ``blocked`` first, on the same request)."""
        self.history.insert(0, self.now)
        self.cache.set(self.key, self.history, self.duration)
