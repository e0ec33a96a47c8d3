from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from tensorfleet_site.serializers import StrictSerializer
from storage_app.formats import FORMATS
from storage_app.models import Dataset
from storage_app.builtin_datasets import BUILTIN_DATASETS


class DatasetUploadSerializer(StrictSerializer):
    file = serializers.FileField(allow_empty_file=True)
    name = serializers.CharField(max_length=200, required=False, help_text="default: the file name without extension")
    format = serializers.ChoiceField(choices=FORMATS, required=False, help_text="default: from the file name")
    label_column = serializers.CharField(max_length=200, default="label", help_text="CSV: the column holding labels")

    def validate_name(self, value: str) -> str:
        value = value.strip()
        if value in BUILTIN_DATASETS:
            raise serializers.ValidationError(f"{value!r} is the name of a built-in dataset.")
        if value.startswith(("/", "s3://")):
            raise serializers.ValidationError("A dataset name cannot look like a path.")
        return value


class DatasetSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = [
            "id",
            "name",
            "format",
            "sha256",
            "size",
            "num_samples",
            "input_shape",
            "num_classes",
            "label_column",
            "source",
            "created_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_download_url(self, dataset: Dataset) -> str:
        path = reverse("dataset-download", kwargs={"pk": dataset.id})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path
