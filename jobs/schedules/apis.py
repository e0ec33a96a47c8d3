"""The schedules API under /api/v1/schedules: schedules, their runs, and a run now.
Owner-only (another user's schedule is a 404)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from jobs.schedules import selectors, services
from jobs.schedules.models import Schedule
from jobs.schedules.serializers import (
    RunSerializer,
    ScheduleSerializer,
    ScheduleUpdateSerializer,
    ScheduleWriteSerializer,
)


class ScheduleViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Your retraining schedules: beat starts each run as an ordinary job at the cron
    times (UTC); a promotion rule registers a better run and moves an alias to it."""

    serializer_class = ScheduleSerializer
    filterset_class = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return Schedule.objects.none()
        return selectors.schedules_visible_to(self.request.user)

    @extend_schema(request=ScheduleWriteSerializer, responses={201: ScheduleSerializer})
    def create(self, request):
        data = ScheduleWriteSerializer(data=request.data, context={"owner": request.user})
        data.is_valid(raise_exception=True)
        schedule = services.schedule_create(owner=request.user, **data.to_fields())
        return Response(ScheduleSerializer(schedule).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ScheduleUpdateSerializer, responses={200: ScheduleSerializer})
    def partial_update(self, request, pk=None):
        schedule = self.get_object()
        data = ScheduleUpdateSerializer(data=request.data, context={"owner": request.user, "instance": schedule})
        data.is_valid(raise_exception=True)
        schedule = services.schedule_update(schedule=schedule, **data.to_fields())
        return Response(ScheduleSerializer(schedule).data)

    @extend_schema(responses=RunSerializer(many=True))
    @action(detail=True, methods=["get"])
    def runs(self, request, pk=None):
        """The schedule's runs, newest first: the job each started, the dataset version it
        trained on, its metric, and whether it was promoted (or why not)."""
        page = self.paginate_queryset(selectors.runs_of(self.get_object()))
        return self.get_paginated_response(RunSerializer(page, many=True).data)

    @extend_schema(request=None, responses={202: RunSerializer})
    @action(detail=True, methods=["post"])
    def run(self, request, pk=None):
        """Start a run now, as beat would (skipped while the previous run is going)."""
        schedule = self.get_object()
        started = services.schedule_run(schedule_id=schedule.id, trigger="manual")
        return Response(RunSerializer(started).data, status=status.HTTP_202_ACCEPTED)
