"""Cron expressions: five fields, minute hour day-of-month month day-of-week (UTC), as
crontab(5) and Celery's crontab read them."""

from __future__ import annotations

from celery.schedules import crontab

FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


class CronInvalid(ValueError):
    pass


def cron_fields(expression: str) -> dict[str, str]:
    """The five fields by name, or CronInvalid saying what is wrong."""
    parts = (expression or "").split()
    if len(parts) != len(FIELDS):
        raise CronInvalid(
            f"a cron expression has 5 fields (minute hour day-of-month month day-of-week); this one has {len(parts)}"
        )
    fields = dict(zip(FIELDS, parts, strict=True))
    try:
        crontab(**fields)  # parses every field now, raising on a bad one
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise CronInvalid(f"not a valid cron expression: {exc}") from None
    return fields
