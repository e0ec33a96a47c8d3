"""The jobs API: thin views over services (writes) and selectors (reads)."""

from __future__ import annotations

from django.http import FileResponse, Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from jobs import selectors
from jobs.filters import JOB_ORDERING, JobFilter
from jobs.id_prefix import IdPrefixLookupMixin
from jobs.models import TaskLog
from jobs.project_serializers import OrganiseSerializer
from jobs.serializers import (
    CheckpointSerializer,
    EpochMetricSerializer,
    JobCreatedSerializer,
    JobCreateSerializer,
    JobSerializer,
    TaskLogSerializer,
    TaskSerializer,
)
from jobs.services import lifecycle, projects
from jobs.specs import SpecInvalid, job_spec_validate, spec_fields
from tensorfleet_site.filtering import StrictFilterBackend, StrictOrderingFilter

READ_ONLY = OpenApiResponse(description="read-only member of the job's project")


class JobViewSet(IdPrefixLookupMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Training jobs of the signed-in user, newest first. A job's routes take its id or a unique
    prefix of 8 or more of its characters."""

    serializer_class = JobSerializer
    filterset_class = JobFilter
    filter_backends = [StrictFilterBackend, StrictOrderingFilter]
    ordering_fields = JOB_ORDERING
    ordering = ["-created_at"]

    def get_queryset(self):
        return selectors.jobs_visible_to(self.request.user).select_related("owner", "project").prefetch_related("tags")

    def _to_change(self):
        """The job, when the user may change it (``selectors.job_may_change``); a reader: 403."""
        job = self.get_object()
        if not selectors.job_may_change(self.request.user, job):
            raise PermissionDenied("You have read-only access to this job's project.")
        return job

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
            403: READ_ONLY,
            404: OpenApiResponse(description="no such job (or deleted meanwhile)"),
            409: OpenApiResponse(description="job still queued or running"),
        }
    )
    def destroy(self, request, pk=None):
        job = self._to_change()
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
            403: READ_ONLY,
            404: OpenApiResponse(description="no such job (or deleted meanwhile)"),
            409: OpenApiResponse(description="job already ended"),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = self._to_change()
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
            403: READ_ONLY,
            404: OpenApiResponse(description="no such job (or deleted meanwhile)"),
            409: OpenApiResponse(description="not resumable: still active, every epoch done, or it diverged"),
        },
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        """Continue a cancelled or failed job from its last completed epoch's checkpoint.
        A job that diverged (error_class "diverged") is refused: the same spec would
        diverge again."""
        job = self._to_change()
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

    @extend_schema(request=OrganiseSerializer, responses={200: JobSerializer, 403: READ_ONLY})
    def partial_update(self, request, pk=None):
        """Change the job's project, tags and/or note; the rest of a job is fixed at submission."""
        job = self._to_change()
        context = {"owner": request.user, "spec_fields": spec_fields()}
        changes = OrganiseSerializer(data=request.data, context=context)
        changes.is_valid(raise_exception=True)
        projects.job_organise(job=job, changes=changes.validated_data)
        return Response(JobSerializer(self.get_queryset().get(id=job.id), context=self.get_serializer_context()).data)

    @extend_schema(responses=TaskLogSerializer)
    @action(
        detail=True,
        methods=["get"],
        url_path=r"tasks/(?P<task_id>[0-9]+)/log",
        url_name="task-log",
        pagination_class=None,
        filterset_class=None,
    )
    def task_log(self, request, pk=None, task_id=None):
        """A shard's log lines: its start, progress at the heartbeat, warnings, how it ended."""
        job = self.get_object()
        task = job.tasks.filter(id=task_id).first()
        if task is None:
            raise Http404("no such task in this job")
        log = selectors.task_log_of(job, epoch=task.epoch, kind=TaskLog.Kind.SHARD, shard=task.shard)
        return Response(TaskLogSerializer(log).data)

    @extend_schema(responses=TaskLogSerializer)
    @action(
        detail=True,
        methods=["get"],
        url_path=r"epochs/(?P<epoch>[0-9]+)/aggregate/log",
        url_name="aggregate-log",
        pagination_class=None,
        filterset_class=None,
    )
    def aggregate_log(self, request, pk=None, epoch=None):
        """An epoch's aggregate's log lines (averaging, evaluation, how it ended)."""
        job = self.get_object()
        if not 1 <= int(epoch) <= job.epochs:
            raise Http404(f"the job has epochs 1 to {job.epochs}")
        return Response(TaskLogSerializer(selectors.task_log_of(job, epoch=int(epoch), kind="aggregate")).data)

    @extend_schema(responses=TaskLogSerializer(many=True))
    @action(detail=True, methods=["get"], filterset_class=None)
    def logs(self, request, pk=None):
        """Every stored log of the job, by epoch, then the aggregate after its shards."""
        job = self.get_object()
        page = self.paginate_queryset(job.task_logs.order_by("epoch", "-kind", "shard"))
        return self.get_paginated_response(TaskLogSerializer(page, many=True).data)

    @extend_schema(responses=TaskSerializer(many=True))
    @action(detail=True, methods=["get"])
    def tasks(self, request, pk=None):
        job = self.get_object()
        page = self.paginate_queryset(job.tasks.all())
        data = TaskSerializer(page, many=True, context=self.get_serializer_context()).data
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
