"""Reads of the schedules: an owner sees their own schedules and runs only."""

from __future__ import annotations

from django.db.models import QuerySet

from jobs.schedules.models import Schedule, ScheduleRun


def schedules_visible_to(user) -> QuerySet[Schedule]:
    if not user.is_authenticated:
        return Schedule.objects.none()
    return Schedule.objects.filter(owner=user).select_related("periodic_task")


def runs_of(schedule: Schedule) -> QuerySet[ScheduleRun]:
    """Newest first."""
    return schedule.runs.order_by("-number")
