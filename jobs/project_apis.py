"""The projects API (/api/v1/projects, /api/v1/tags): thin views over
jobs/services/projects.py (writes) and jobs/selectors.py (who sees and changes what).

A project's members see it; only its owner renames, deletes it or changes its members
(anyone else: 403). Tags are listed with the number of jobs and sweeps the user sees
under each.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.response import Response

from jobs import selectors
from jobs.id_prefix import IdPrefixLookupMixin
from jobs.models import Tag
from jobs.project_serializers import (
    MemberSerializer,
    MemberSetSerializer,
    ProjectCreateSerializer,
    ProjectSerializer,
    ProjectUpdateSerializer,
    TagCountSerializer,
)
from jobs.services import projects

FORBIDDEN = OpenApiResponse(description="you are a member, not the owner")


class ProjectViewSet(
    IdPrefixLookupMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Projects you own or are a member of, by name. A project groups jobs and sweeps
    (their ``project`` field); members with role ``read`` see them, ``write`` also submit
    into the project and cancel, resume, delete and edit its jobs and sweeps."""

    serializer_class = ProjectSerializer
    filterset_class = None
    id_noun = "project"

    def get_queryset(self):
        return (
            selectors.projects_visible_to(self.request.user).select_related("owner").prefetch_related("members__user")
        )

    def _owned(self):
        project = self.get_object()
        if project.owner_id != self.request.user.pk:
            raise PermissionDenied("Only the project's owner changes it or its members.")
        return project

    def _answer(self, project, code=status.HTTP_200_OK):
        project = self.get_queryset().get(id=project.id)  # members and owner as stored
        return Response(ProjectSerializer(project, context=self.get_serializer_context()).data, status=code)

    @extend_schema(request=ProjectCreateSerializer, responses={201: ProjectSerializer})
    def create(self, request):
        spec = ProjectCreateSerializer(data=request.data)
        spec.is_valid(raise_exception=True)
        try:
            project = projects.project_create(owner=request.user, **spec.validated_data)
        except projects.ProjectNameTaken as exc:
            raise ValidationError({"name": [str(exc)]}) from None
        return self._answer(project, status.HTTP_201_CREATED)

    @extend_schema(request=ProjectUpdateSerializer, responses={200: ProjectSerializer, 403: FORBIDDEN})
    def partial_update(self, request, pk=None):
        project = self._owned()
        changes = ProjectUpdateSerializer(data=request.data)
        changes.is_valid(raise_exception=True)
        try:
            project = projects.project_update(project=project, changes=changes.validated_data)
        except projects.ProjectNameTaken as exc:
            raise ValidationError({"name": [str(exc)]}) from None
        return self._answer(project)

    @extend_schema(responses={204: None, 403: FORBIDDEN})
    def destroy(self, request, pk=None):
        """Delete the project; its jobs and sweeps stay, in no project."""
        projects.project_delete(project=self._owned())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        methods=["POST"],
        request=MemberSetSerializer,
        responses={200: MemberSerializer, 403: FORBIDDEN},
        description="Share the project with a user (role read or write), or change their role.",
    )
    @extend_schema(methods=["GET"], responses=MemberSerializer(many=True))
    @action(detail=True, methods=["get", "post"], pagination_class=None, filterset_class=None)
    def members(self, request, pk=None):
        if request.method == "GET":
            return Response(MemberSerializer(self.get_object().members.select_related("user"), many=True).data)
        project = self._owned()
        spec = MemberSetSerializer(data=request.data)
        spec.is_valid(raise_exception=True)
        try:
            member = projects.member_set(project=project, **spec.validated_data)
        except projects.NotAMember as exc:
            raise ValidationError({"user": [str(exc)]}) from None
        return Response(MemberSerializer(member).data)

    @extend_schema(responses={204: None, 403: FORBIDDEN, 404: OpenApiResponse(description="no such member")})
    @action(
        detail=True,
        methods=["delete"],
        url_path=r"members/(?P<username>[^/]+)",
        url_name="member-remove",
        pagination_class=None,
        filterset_class=None,
    )
    def member_remove(self, request, pk=None, username=None):
        """Stop sharing the project with a user. A member may remove themself."""
        project = self.get_object()
        user = get_user_model().objects.filter(username=username).first()
        if project.owner_id != request.user.pk and user != request.user:
            raise PermissionDenied("Only the project's owner removes another member.")
        if user is None or not projects.member_remove(project=project, user=user):
            raise Http404(f"{username} is no member of this project")
        return Response(status=status.HTTP_204_NO_CONTENT)


class TagViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The tags on the jobs and sweeps you see, by name, with how many of each carry it."""

    serializer_class = TagCountSerializer
    filterset_class = None

    def get_queryset(self):
        user = self.request.user
        jobs = selectors.jobs_visible_to(user).values("id")
        sweeps = selectors.sweeps_visible_to(user).values("id")
        return (
            Tag.objects.annotate(
                jobs_count=Count("jobs", filter=Q(jobs__in=jobs), distinct=True),
                sweeps_count=Count("sweeps", filter=Q(sweeps__in=sweeps), distinct=True),
            )
            .filter(Q(jobs_count__gt=0) | Q(sweeps_count__gt=0))
            .order_by("name")
        )

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        rows = [{"name": t.name, "jobs": t.jobs_count, "sweeps": t.sweeps_count} for t in page]
        return self.get_paginated_response(TagCountSerializer(rows, many=True).data)
