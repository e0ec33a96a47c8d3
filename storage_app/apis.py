"""The datasets API: upload (multipart, spooled to disk), list, detail, download, delete."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.conf import settings
from django.http import FileResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from storage_app import datasets
from storage_app.models import Dataset
from storage_app.serializers import DatasetSerializer, DatasetUploadSerializer
from tensorfleet_site.parsers import FormParser, MultiPartParser


def _too_large(size: int) -> Response:
    limit = settings.TENSORFLEET_MAX_DATASET_BYTES
    return Response(
        {"file": [f"The upload is {size} bytes; the limit is {limit} bytes."]},
        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )


class DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your datasets. Jobs name them in `dataset` by id or name."""

    serializer_class = DatasetSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # the schema generator has no user
            return Dataset.objects.none()
        return Dataset.objects.filter(owner=self.request.user)

    @extend_schema(
        request={"multipart/form-data": DatasetUploadSerializer},
        responses={
            201: DatasetSerializer,
            400: OpenApiResponse(description="an invalid file, name or field; the field's message says why"),
            411: OpenApiResponse(description="a chunked body without a Content-Length"),
            413: OpenApiResponse(
                description="the upload is over TENSORFLEET_MAX_DATASET_BYTES, or it decompresses to more "
                "than TENSORFLEET_MAX_DATASET_EXPANDED_BYTES (or the expansion ratio allows)"
            ),
        },
    )
    def create(self, request):
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:  # RequestBodyLimitMiddleware answers this first; a view does not trust it
            declared = 0
        if declared > settings.TENSORFLEET_MAX_DATASET_BYTES + 64 * 1024:  # refuse before reading the body
            return _too_large(declared)
        upload = DatasetUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        file = data["file"]
        if file.size > settings.TENSORFLEET_MAX_DATASET_BYTES:
            return _too_large(file.size)
        with tempfile.TemporaryDirectory(prefix="tf-upload-") as tmp:
            if hasattr(file, "temporary_file_path"):
                path = Path(file.temporary_file_path())
            else:  # small uploads stay in memory: give the parser a file
                # A fixed name: the client's may be 255 characters of UTF-8, past the file system's 255 bytes.
                path = Path(tmp) / "upload"
                with open(path, "wb") as fh:
                    for chunk in file.chunks():
                        fh.write(chunk)
            try:
                dataset = datasets.dataset_create(
                    owner=request.user,
                    name=data["name"],
                    path=path,
                    fmt=data.get("format"),
                    label_column=data["label_column"],
                    source=file.name,
                    image_size=data.get("image_size"),
                )
            except datasets.DatasetError as exc:
                return Response({exc.field: [str(exc)]}, status=exc.status)
        return Response(DatasetSerializer(dataset, context={"request": request}).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None, 409: OpenApiResponse(description="a queued or running job uses it")})
    def destroy(self, request, pk=None):
        dataset = self.get_object()
        try:
            datasets.dataset_delete(dataset=dataset)
        except datasets.DatasetInUse as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        dataset = self.get_object()
        ext = datasets.EXTENSIONS[dataset.format]
        response = FileResponse(dataset.file.open("rb"), as_attachment=True, filename=f"{dataset.name}.{ext}")
        response["X-Checksum-SHA256"] = dataset.sha256
        response["Content-Length"] = str(dataset.size)
        return response
