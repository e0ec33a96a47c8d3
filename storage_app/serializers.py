from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from storage_app.dataset_names import NAME_MAX_CHARS, dataset_name_error, dataset_name_from_file
from storage_app.formats import FORMATS, DatasetFormatError, parse_image_size
from storage_app.models import Dataset, Weights
from storage_app.weights import NAME_MAX_CHARS as WEIGHTS_NAME_MAX_CHARS
from storage_app.weights import weights_name_error, weights_name_from_file
from tensorfleet_site.serializers import StrictSerializer


class DatasetUploadSerializer(StrictSerializer):
    file = serializers.FileField(allow_empty_file=True)
    name = serializers.CharField(
        max_length=NAME_MAX_CHARS, required=False, help_text="default: the file name up to its first dot"
    )
    format = serializers.ChoiceField(
        choices=FORMATS,
        required=False,
        help_text="default: from the file name (.csv, .npz, .parquet; .tar, .tar.gz or .tgz are image folders; "
        ".zip is IDX when it holds MNIST's file names, image folders otherwise)",
    )
    label_column = serializers.CharField(
        max_length=200, default="label", help_text="CSV and Parquet: the column holding labels (integers or names)"
    )
    image_size = serializers.CharField(
        max_length=20,
        required=False,
        help_text="image folders: the size every image is resized to, a side (32) or WIDTHxHEIGHT (32x32); "
        "default: the most common size",
    )

    def validate_name(self, value: str) -> str:
        value = value.strip()
        problem = dataset_name_error(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate_image_size(self, value: str) -> tuple[int, int] | None:
        """(height, width)."""
        try:
            return parse_image_size(value)
        except DatasetFormatError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def validate(self, attrs):
        """A name from the file name obeys the same rules as a name given."""
        if not attrs.get("name"):
            derived = dataset_name_from_file(attrs["file"].name or "")
            problem = dataset_name_error(derived)
            if problem:
                raise serializers.ValidationError(
                    {"name": [f"{problem} (It comes from the file name; give a name in 'name'.)"]}
                )
            attrs["name"] = derived
        return attrs


class DatasetSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Dataset
        fields = [
            "id",
            "name",
            "version",
            "format",
            "sha256",
            "size",
            "num_samples",
            "input_shape",
            "num_classes",
            "class_names",
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


class WeightsUploadSerializer(StrictSerializer):
    file = serializers.FileField(allow_empty_file=True, help_text="a .safetensors file")
    name = serializers.CharField(
        max_length=WEIGHTS_NAME_MAX_CHARS, required=False, help_text="default: the file name up to its first dot"
    )

    def validate_name(self, value: str) -> str:
        value = value.strip()
        problem = weights_name_error(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value

    def validate(self, attrs):
        """A name from the file name obeys the same rules as a name given."""
        if not attrs.get("name"):
            derived = weights_name_from_file(attrs["file"].name or "")
            problem = weights_name_error(derived)
            if problem:
                raise serializers.ValidationError(
                    {"name": [f"{problem} (It comes from the file name; give a name in 'name'.)"]}
                )
            attrs["name"] = derived
        return attrs


class WeightsSerializer(serializers.ModelSerializer):
    """Weights in a list: what they are, without their tensors."""

    num_tensors = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = Weights
        fields = ["id", "name", "sha256", "size", "num_tensors", "created_at", "download_url"]
        read_only_fields = fields

    def get_num_tensors(self, weights: Weights) -> int:
        return len(weights.tensors)

    def get_download_url(self, weights: Weights) -> str:
        path = reverse("weights-download", kwargs={"pk": weights.id})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class WeightsDetailSerializer(WeightsSerializer):
    """One upload, with each tensor's dtype and shape and the file's metadata."""

    tensors = serializers.DictField(
        child=serializers.ListField(), help_text="tensor name -> [dtype, shape], from the file's header"
    )
    metadata = serializers.DictField(child=serializers.CharField(), help_text="the file's safetensors metadata")

    class Meta(WeightsSerializer.Meta):
        fields = [*WeightsSerializer.Meta.fields, "tensors", "metadata"]
        read_only_fields = fields
