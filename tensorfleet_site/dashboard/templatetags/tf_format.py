"""Template filters over dashboard/formatting.py: ``{% load tf_format %}`` then
``{{ x|duration }}``, ``|accuracy``, ``|loss``, ``|size``, ``|rate``, ``|number``,
``{{ job|status_label }}`` and ``{{ job|status_class }}``."""

from __future__ import annotations

from django import template
from django.utils import timezone

from tensorfleet_site.dashboard import formatting

register = template.Library()

for _name in ("duration", "accuracy", "loss", "size", "rate", "number", "status_label", "status_class"):
    register.filter(_name, getattr(formatting, _name))


@register.filter
def job_duration(job) -> str:
    """From the job's start to its end, or to now while it runs."""
    if job.started_at is None:
        return formatting.NONE
    end = job.finished_at or timezone.now()
    return formatting.duration((end - job.started_at).total_seconds())
