"""The weights API: upload a safetensors file (multipart, spooled to disk), list,
detail, download, delete. Jobs start from them with ``init_from: {"weights": ...}``."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.conf import settings
from django.http import FileResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from storage_app import weights as weights_service
from storage_app.models import Weights
from storage_app.serializers import WeightsDetailSerializer, WeightsSerializer, WeightsUploadSerializer
from tensorfleet_site.parsers import FormParser, MultiPartParser


def _too_large(size: int) -> Response:
    limit = settings.TENSORFLEET_MAX_DATASET_BYTES
    return Response(
        {"file": [f"The upload is {size} bytes; the limit is {limit} bytes."]},
        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )


class WeightsViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your uploaded weights (safetensors). Jobs name them in `init_from` by id or name."""

    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return Weights.objects.none()
        return Weights.objects.filter(owner=self.request.user)

    def get_serializer_class(self):
        return WeightsDetailSerializer if self.action == "retrieve" else WeightsSerializer

    @extend_schema(
        request={"multipart/form-data": WeightsUploadSerializer},
        responses={
            201: WeightsDetailSerializer,
            400: OpenApiResponse(description="not a safetensors file this platform reads, or a bad name"),
            411: OpenApiResponse(description="a chunked body without a Content-Length"),
            413: OpenApiResponse(description="the upload is over TENSORFLEET_MAX_DATASET_BYTES"),
            429: OpenApiResponse(description="over the stored_bytes quota"),
        },
    )
    def create(self, request):
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > settings.TENSORFLEET_MAX_DATASET_BYTES + 64 * 1024:  # refuse before reading the body
            return _too_large(declared)
        upload = WeightsUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        file, name = upload.validated_data["file"], upload.validated_data["name"]
        if file.size > settings.TENSORFLEET_MAX_DATASET_BYTES:
            return _too_large(file.size)
        with tempfile.TemporaryDirectory(prefix="tf-weights-") as tmp:
            if hasattr(file, "temporary_file_path"):
                path = Path(file.temporary_file_path())
            else:  # small uploads stay in memory: give the parser a file
                path = Path(tmp) / "upload"
                with open(path, "wb") as fh:
                    for chunk in file.chunks():
                        fh.write(chunk)
            try:
                weights = weights_service.weights_create(owner=request.user, name=name, path=path)
            except weights_service.WeightsError as exc:
                return Response({exc.field: [str(exc)]}, status=exc.status)
        body = WeightsDetailSerializer(weights, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None, 409: OpenApiResponse(description="a queued or running job starts from them")})
    def destroy(self, request, pk=None):
        weights = self.get_object()
        try:
            weights_service.weights_delete(weights=weights)
        except weights_service.WeightsInUse as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        weights = self.get_object()
        response = FileResponse(weights.file.open("rb"), as_attachment=True, filename=f"{weights.name}.safetensors")
        response["X-Checksum-SHA256"] = weights.sha256
        response["Content-Length"] = str(weights.size)
        return response
