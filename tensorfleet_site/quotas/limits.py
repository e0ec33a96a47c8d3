"""What a user may hold at once, and the error that says which limit a request hit.

Limits come from settings (``TENSORFLEET_QUOTA_*``; 0 means unlimited) with per-user
overrides (``Quota`` rows, edited in the admin). The apps count their own use and call
``check``; the API answers ``QuotaExceeded`` with 429 (tensorfleet_site.api_errors),
or 400 when the request alone is over the limit and so could never fit.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

NAMES = ("active_jobs", "shards_in_flight", "sweep_trials", "stored_bytes", "checkpoints_per_job")


class QuotaExceeded(Exception):
    """``quota`` would go over ``limit`` (``used`` now, ``asked`` more). ``never_fits``:
    the request alone is over the limit, so waiting will not help (a 400, not a 429)."""

    def __init__(self, *, quota: str, limit: int, used: int, asked: int, field: str = ""):
        self.quota, self.limit, self.used, self.asked = quota, limit, used, asked
        self.never_fits = asked > limit
        self.field = field
        if self.never_fits:
            message = f"over the {quota} quota: this asks for {asked}, the limit is {limit}."
        else:
            message = f"over the {quota} quota: {used} in use, {asked} more asked, the limit is {limit}."
        super().__init__(message)

    def as_dict(self) -> dict:
        return {"quota": self.quota, "limit": self.limit, "used": self.used, "asked": self.asked}


@dataclass(frozen=True)
class Limits:
    active_jobs: int
    shards_in_flight: int
    sweep_trials: int
    stored_bytes: int
    checkpoints_per_job: int


def limits_for(user) -> Limits:
    defaults = {name: getattr(settings, f"TENSORFLEET_QUOTA_{name.upper()}") for name in NAMES}
    override = getattr(user, "quota", None) if getattr(user, "pk", None) else None
    if override is not None:
        defaults.update({n: getattr(override, n) for n in NAMES if getattr(override, n) is not None})
    return Limits(**defaults)


def check(user, quota: str, *, used: int, asked: int, field: str = "") -> None:
    """Raise QuotaExceeded when ``used + asked`` goes over the user's limit (0: none)."""
    limit = getattr(limits_for(user), quota)
    if limit and used + asked > limit:
        raise QuotaExceeded(quota=quota, limit=limit, used=used, asked=asked, field=field)
