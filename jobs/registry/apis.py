"""The registry API under /api/v1/models: models by name, their versions by number, aliases
by name, and downloads of a version's safetensors file (by number or through an alias).
Owner-only: another user's model is a 404, whatever the path below it."""

from __future__ import annotations

import django_filters
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from jobs.registry import selectors, services
from jobs.registry.models import ModelVersion, RegisteredModel
from jobs.registry.serializers import (
    AliasSerializer,
    AliasSetSerializer,
    ModelCreateSerializer,
    ModelUpdateSerializer,
    RegisteredModelDetailSerializer,
    RegisteredModelSerializer,
    VersionCreateSerializer,
    VersionSerializer,
    validate_alias_name,
)

NUMBER = OpenApiParameter("number", OpenApiTypes.INT, OpenApiParameter.PATH, description="the version number")
ALIAS = OpenApiParameter("alias", OpenApiTypes.STR, OpenApiParameter.PATH, description="e.g. champion")
FILE = {(200, "application/octet-stream"): OpenApiTypes.BINARY}


def _error(exc: services.RegistryError) -> Response:
    return Response({exc.field: [str(exc)]}, status=exc.status)


def _file_response(version: ModelVersion) -> FileResponse:
    response = FileResponse(version.file.file.open("rb"), as_attachment=True, filename=version.download_name)
    response["X-Checksum-SHA256"] = version.file.sha256
    response["Content-Length"] = str(version.file.size)
    response["X-TensorFleet-Model-Version"] = str(version.version)
    return response


class ModelFilter(django_filters.FilterSet):
    tag = django_filters.CharFilter(field_name="tags__name", help_text="models with this tag")

    class Meta:
        model = RegisteredModel
        fields = ["tag"]


class RegisteredModelViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Your registered models, by name."""

    lookup_field = "name"
    lookup_value_regex = r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}"
    filterset_class = ModelFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return RegisteredModel.objects.none()
        return selectors.models_visible_to(self.request.user).prefetch_related("versions", "aliases__version", "tags")

    def get_serializer_class(self):
        return RegisteredModelDetailSerializer if self.action == "retrieve" else RegisteredModelSerializer

    @extend_schema(request=ModelCreateSerializer, responses={201: RegisteredModelSerializer})
    def create(self, request):
        data = ModelCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            model = services.model_create(owner=request.user, **data.validated_data)
        except services.RegistryError as exc:
            return _error(exc)
        body = RegisteredModelSerializer(model, context=self.get_serializer_context()).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=ModelUpdateSerializer, responses={200: RegisteredModelSerializer})
    def partial_update(self, request, name=None):
        model = self.get_object()
        data = ModelUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        model = services.model_update(model=model, **data.validated_data)
        return Response(RegisteredModelSerializer(model, context=self.get_serializer_context()).data)

    def perform_destroy(self, instance):
        services.model_delete(model=instance)

    # Versions ---------------------------------------------------------------------------

    @extend_schema(methods=["GET"], responses=VersionSerializer(many=True))
    @extend_schema(
        methods=["POST"],
        request=VersionCreateSerializer,
        responses={
            201: VersionSerializer,
            400: OpenApiResponse(description="no such job of yours, or it has no such checkpoint"),
            409: OpenApiResponse(description="the checkpoint was deleted meanwhile"),
        },
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None, filterset_class=None)
    def versions(self, request, name=None):
        """GET: the model's versions, oldest first. POST: version n+1 from one of your job's checkpoints."""
        model = self.get_object()
        if request.method == "GET":
            versions = selectors.versions_of(model)
            return Response(VersionSerializer(versions, many=True, context=self.get_serializer_context()).data)
        data = VersionCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        spec = data.validated_data
        job = selectors.job_of(request.user, spec["job"])
        if job is None:
            raise ValidationError({"job": [f"No job of yours has the id {spec['job']}."]})
        try:
            version = services.version_create(
                model=model,
                job=job,
                source=spec["checkpoint"],
                epoch=spec.get("epoch"),
                description=spec["description"],
            )
        except services.RegistryError as exc:
            return _error(exc)
        body = VersionSerializer(selectors.version_of(model, version.version), context=self.get_serializer_context())
        return Response(body.data, status=status.HTTP_201_CREATED)

    def _version(self, number) -> ModelVersion:
        version = selectors.version_of(self.get_object(), number)
        if version is None:
            raise Http404("no such version")
        return version

    @extend_schema(methods=["GET"], parameters=[NUMBER], responses=VersionSerializer)
    @extend_schema(
        methods=["DELETE"],
        parameters=[NUMBER],
        responses={204: None, 409: OpenApiResponse(description="an alias points at it")},
    )
    @action(
        detail=True,
        methods=["get", "delete"],
        url_path=r"versions/(?P<number>[0-9]+)",
        url_name="version",
        pagination_class=None,
        filterset_class=None,
    )
    def version(self, request, name=None, number=None):
        """One version, immutable. DELETE removes it (its file goes with the last version
        holding the same bytes); a version an alias points at is refused."""
        version = self._version(number)
        if request.method == "GET":
            return Response(VersionSerializer(version, context=self.get_serializer_context()).data)
        try:
            services.version_delete(version=version)
        except services.RegistryError as exc:
            return _error(exc)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(parameters=[NUMBER], responses=FILE)
    @action(
        detail=True,
        methods=["get"],
        url_path=r"versions/(?P<number>[0-9]+)/download",
        url_name="version-download",
        pagination_class=None,
        filterset_class=None,
    )
    def version_download(self, request, name=None, number=None):
        """The version's safetensors file; X-Checksum-SHA256 holds its sha256."""
        return _file_response(self._version(number))

    # Aliases ----------------------------------------------------------------------------

    @extend_schema(responses=AliasSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def aliases(self, request, name=None):
        model = self.get_object()
        return Response(AliasSerializer(model.aliases.all(), many=True, context=self.get_serializer_context()).data)

    @extend_schema(methods=["GET"], parameters=[ALIAS], responses=AliasSerializer)
    @extend_schema(methods=["PUT"], parameters=[ALIAS], request=AliasSetSerializer, responses=AliasSerializer)
    @extend_schema(methods=["DELETE"], parameters=[ALIAS], responses={204: None})
    @action(
        detail=True,
        methods=["get", "put", "delete"],
        url_path=r"aliases/(?P<alias>[^/]+)",
        url_name="alias",
        pagination_class=None,
        filterset_class=None,
    )
    def alias(self, request, name=None, alias=None):
        """PUT {"version": n} points the alias at version n (created if new), atomically:
        a download through it serves the old version or the new one, never neither."""
        model = self.get_object()
        if request.method == "PUT":
            validate_alias_name(alias)
            data = AliasSetSerializer(data=request.data)
            data.is_valid(raise_exception=True)
            try:
                services.alias_set(model=model, name=alias, version=data.validated_data["version"])
            except services.RegistryError as exc:
                return _error(exc)
        elif request.method == "DELETE":
            try:
                services.alias_delete(model=model, name=alias)
            except services.RegistryError as exc:
                return _error(exc)
            return Response(status=status.HTTP_204_NO_CONTENT)
        found = selectors.alias_of(model, alias)
        if found is None:
            raise Http404("no such alias")
        return Response(AliasSerializer(found, context=self.get_serializer_context()).data)

    @extend_schema(parameters=[ALIAS], responses=FILE)
    @action(
        detail=True,
        methods=["get"],
        url_path=r"aliases/(?P<alias>[^/]+)/download",
        url_name="alias-download",
        pagination_class=None,
        filterset_class=None,
    )
    def alias_download(self, request, name=None, alias=None):
        """The file of the version the alias points at (X-TensorFleet-Model-Version says which)."""
        found = selectors.alias_of(self.get_object(), alias)
        if found is None:
            raise Http404("no such alias")
        return _file_response(found.version)
