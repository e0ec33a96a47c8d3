from __future__ import annotations

import django_filters

from jobs.models import Job, Status


class JobFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Status.choices)
    sweep = django_filters.UUIDFilter(field_name="sweep_id", help_text="a sweep's trials")

    class Meta:
        model = Job
        fields = ["status", "sweep"]
