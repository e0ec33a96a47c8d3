"""The jobs list's query parameters: filters (``JobFilter``) and sort fields (``JOB_ORDERING``).
An unknown parameter, a bad value or an unknown sort field is a 400 naming what is valid
(tensorfleet_site/filtering.py)."""

from __future__ import annotations

import uuid

import django_filters
from django.db.models import Q, QuerySet
from rest_framework.exceptions import ValidationError

from jobs.models import Job, Status
from jobs.projects import tags_clean

# ?ordering= takes these, '-' first for descending; empty values sort last either way.
JOB_ORDERING = ("created_at", "finished_at", "val_accuracy", "best_val_accuracy", "train_loss", "val_loss")


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.strip())
    except ValueError:
        return None


class JobFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Status.choices)
    sweep = django_filters.UUIDFilter(field_name="sweep_id", help_text="a sweep's trials")
    project = django_filters.CharFilter(method="filter_project", help_text="a project's id or name")
    tag = django_filters.CharFilter(method="filter_tag", help_text="a tag; several, comma-separated: jobs with all")
    model = django_filters.CharFilter(field_name="model_type", help_text="the model_type, exactly")
    dataset = django_filters.CharFilter(method="filter_dataset", help_text="a dataset's name, or an uploaded one's id")
    name = django_filters.CharFilter(field_name="name", lookup_expr="icontains", help_text="text in the job's name")
    created_after = django_filters.DateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="ISO 8601 date or time, e.g. 2026-11-30T12:00:00Z"
    )
    created_before = django_filters.DateTimeFilter(field_name="created_at", lookup_expr="lt", help_text="ISO 8601")

    class Meta:
        model = Job
        fields = ["status", "sweep", "project", "tag", "model", "dataset", "name", "created_after", "created_before"]

    def filter_project(self, queryset: QuerySet[Job], name: str, value: str) -> QuerySet[Job]:
        project_id = _uuid_or_none(value)
        if project_id is not None:
            return queryset.filter(project_id=project_id)
        return queryset.filter(project__name=value.strip())

    def filter_tag(self, queryset: QuerySet[Job], name: str, value: str) -> QuerySet[Job]:
        try:
            tags = tags_clean([t for t in value.split(",") if t.strip()])
        except ValueError as exc:
            raise ValidationError({"tag": [str(exc)]}) from None
        for tag in tags:  # one join per tag: a job has each tag at most once, so no row repeats
            queryset = queryset.filter(tags__name=tag)
        return queryset

    def filter_dataset(self, queryset: QuerySet[Job], name: str, value: str) -> QuerySet[Job]:
        dataset_id = _uuid_or_none(value)
        if dataset_id is not None:
            return queryset.filter(Q(dataset_ref_id=dataset_id) | Q(dataset=value.strip()))
        return queryset.filter(dataset=value.strip())
