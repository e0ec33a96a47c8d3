"""The jobs API: thin views over services (writes) and selectors (reads)."""

from __future__ import annotations

from django.http import FileResponse, Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from jobs import selectors
from jobs.filters import JobFilter
from jobs.id_prefix import IdPrefixLookupMixin
from jobs.serializers import (
    CheckpointSerializer,
    EpochMetricSerializer,
    JobCreatedSerializer,
    JobCreateSerializer,
    JobSerializer,
    TaskSerializer,
)
from jobs.services import lifecycle
from jobs.specs import SpecInvalid, job_spec_validate


class JobViewSet(IdPrefixLookupMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Training jobs of the signed-in user, newest first. A job's routes take its id or a unique
    prefix of 8 or more of its characters."""

    serializer_class = JobSerializer
    filterset_class = JobFilter

    def get_queryset(self):
        return selectors.jobs_visible_to(self.request.user).select_related("owner")

    @extend_schema(request=JobCreateSerializer, responses={201: JobCreatedSerializer})
    def create(self, request):
        """Submit a job. The answer's ``warnings`` say what may keep it waiting, e.g. that
        no worker consumes its queue."""
        try:
            spec = job_spec_validate(owner=request.user, data=request.data)
            job = lifecycle.job_create(owner=request.user, spec=spec)
        except SpecInvalid as exc:
            raise ValidationError(exc.errors) from None
        body = JobCreatedSerializer(job, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses={
            204: None,
            404: OpenApiResponse(description="no such job (or deleted meanwhile)"),
            409: OpenApiResponse(description="job still queued or running"),
        }
    )
    def destroy(self, request, pk=None):
        job = self.get_object()
        try:
            lifecycle.job_delete(job=job)
        except lifecycle.JobNotFinished as exc:
            return Response({"status": [str(exc)]}, status=status.HTTP_409_CONFLICT)
        except lifecycle.JobGone as exc:
            raise Http404(str(exc)) from None
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        request=None,
        responses={
            200: JobSerializer,
            404: OpenApiResponse(description="no such job (or deleted meanwhile)"),
            409: OpenApiResponse(description="job already ended"),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = self.get_object()
        try:
            job = lifecycle.job_cancel(job=job)
        except lifecycle.JobNotActive as exc:
            return Response({"status": [str(exc)]}, status=status.HTTP_409_CONFLICT)
        except lifecycle.JobGone as exc:
            raise Http404(str(exc)) from None
        return Response(JobSerializer(job, context=self.get_serializer_context()).data)

    @extend_schema(
        request=None,
        responses={
            202: JobSerializer,
            404: OpenApiResponse(description="no such job (or deleted meanwhile)"),
            409: OpenApiResponse(description="not resumable: still active, every epoch done, or it diverged"),
        },
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Continue a cancelled or failed job from its last completed epoch's checkpoint.
        A job that diverged (error_class "diverged") is refused: the same spec would
        diverge again."""
        job = self.get_object()
        try:
            lifecycle.job_resume(job=job)
        except lifecycle.JobNotResumable as exc:
            return Response({"status": [str(exc)]}, status=status.HTTP_409_CONFLICT)
        except lifecycle.JobGone as exc:
            raise Http404(str(exc)) from None
        resumed = self.get_queryset().filter(id=job.id).first()
        if resumed is None:  # resumed, then cancelled and deleted by racing requests
            raise Http404("the job was deleted")
        return Response(
            JobSerializer(resumed, context=self.get_serializer_context()).data, status=status.HTTP_202_ACCEPTED
        )

    @extend_schema(responses=TaskSerializer(many=True))
    @action(detail=True, methods=["get"])
    def tasks(self, request, pk=None):
        job = self.get_object()
        page = self.paginate_queryset(job.tasks.all())
        data = TaskSerializer(page, many=True).data
        return self.get_paginated_response(data)

    @extend_schema(responses=EpochMetricSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def metrics(self, request, pk=None):
        job = self.get_object()
        return Response(EpochMetricSerializer(job.epoch_metrics.all(), many=True).data)

    @extend_schema(responses=CheckpointSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def checkpoints(self, request, pk=None):
        job = self.get_object()
        return Response(
            CheckpointSerializer(job.checkpoints.all(), many=True, context=self.get_serializer_context()).data
        )

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    @action(
        detail=True,
        methods=["get"],
        url_path=r"checkpoints/(?P<checkpoint_id>[0-9]+)/download",
        url_name="checkpoint-download",
        pagination_class=None,
        filterset_class=None,
    )
    def download(self, request, pk=None, checkpoint_id=None):
        job = self.get_object()
        checkpoint = selectors.checkpoint_for_download(job, checkpoint_id)
        if checkpoint is None:
            raise Http404("no such checkpoint")
        response = FileResponse(checkpoint.file.open("rb"), as_attachment=True, filename=checkpoint.download_name)
        response["X-Checksum-SHA256"] = checkpoint.sha256
        response["Content-Length"] = str(checkpoint.size)
        return response
