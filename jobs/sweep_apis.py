"""The sweeps API: thin views over jobs/sweeps.py (writes) and selectors (reads)."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from jobs import selectors
from jobs.id_prefix import IdPrefixLookupMixin
from jobs.models import Job, Status, Sweep
from jobs.project_serializers import OrganiseSerializer
from jobs.services import projects, sweeps
from jobs.sweep_serializers import (
    SweepCreateSerializer,
    SweepDetailSerializer,
    SweepSerializer,
    SweepTrialSerializer,
)

READ_ONLY = OpenApiResponse(description="read-only member of the sweep's project")


class SweepFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Status.choices)
    project = django_filters.UUIDFilter(field_name="project_id", help_text="a project's id")
    tag = django_filters.CharFilter(field_name="tags__name", help_text="a tag")

    class Meta:
        model = Sweep
        fields = ["status", "project", "tag"]


class SweepViewSet(IdPrefixLookupMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Hyperparameter sweeps of the signed-in user, newest first. Their trials are jobs. A sweep's
    routes take its id or a unique prefix of 8 or more of its characters."""

    id_noun = "sweep"

    serializer_class = SweepSerializer
    filterset_class = SweepFilter

    def get_queryset(self):
        return (
            selectors.sweeps_visible_to(self.request.user)
            .select_related("owner", "best_trial")
            .prefetch_related("tags")
        )

    def get_serializer_class(self):
        return SweepDetailSerializer if self.action == "retrieve" else SweepSerializer

    def _to_change(self):
        """The sweep, when the user may change it (``selectors.sweep_may_change``); a reader: 403."""
        sweep = self.get_object()
        if not selectors.sweep_may_change(self.request.user, sweep):
            raise PermissionDenied("You have read-only access to this sweep's project.")
        return sweep

    @extend_schema(request=OrganiseSerializer, responses={200: SweepDetailSerializer, 403: READ_ONLY})
    def partial_update(self, request, pk=None):
        """Change the sweep's project (its trials move with it), tags and/or note."""
        sweep = self._to_change()
        changes = OrganiseSerializer(data=request.data, context={"owner": request.user})
        changes.is_valid(raise_exception=True)
        projects.sweep_organise(sweep=sweep, changes=changes.validated_data)
        sweep = self.get_queryset().get(id=sweep.id)
        return Response(SweepDetailSerializer(sweep, context=self.get_serializer_context()).data)

    @extend_schema(request=SweepCreateSerializer, responses={201: SweepDetailSerializer})
    def create(self, request):
        spec = SweepCreateSerializer(data=request.data, context={"owner": request.user})
        spec.is_valid(raise_exception=True)
        sweep = sweeps.sweep_create(owner=request.user, spec=spec.validated_data)
        body = SweepDetailSerializer(sweep, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=None,
        responses={
            200: SweepDetailSerializer,
            403: READ_ONLY,
            409: OpenApiResponse(description="sweep already ended"),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Stop the sweep: no new trial starts, queued and running trials are cancelled."""
        sweep = self._to_change()
        try:
            sweep = sweeps.sweep_cancel(sweep=sweep)
        except sweeps.SweepNotActive as exc:
            return Response({"status": [str(exc)]}, status=status.HTTP_409_CONFLICT)
        return Response(SweepDetailSerializer(sweep, context=self.get_serializer_context()).data)

    @extend_schema(responses=SweepTrialSerializer(many=True))
    @action(detail=True, methods=["get"], filterset_class=None)
    def trials(self, request, pk=None):
        """The trials started so far, by trial number, with their values, status and metric."""
        sweep = self.get_object()
        trials = Job.objects.filter(sweep=sweep).select_related("sweep").order_by("trial_number")
        page = self.paginate_queryset(trials)
        return self.get_paginated_response(
            SweepTrialSerializer(page, many=True, context=self.get_serializer_context()).data
        )
