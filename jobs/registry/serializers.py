"""Input and output shapes of the registry API."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from jobs.projects import TagsField
from jobs.registry.models import ModelAlias, ModelVersion, RegisteredModel
from jobs.registry.services import alias_name_error, model_name_error
from tensorfleet_site.serializers import StrictSerializer


def _absolute(context: dict, path: str) -> str:
    request = context.get("request")
    return request.build_absolute_uri(path) if request else path


class ModelCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, help_text="letters, digits, '-' and '_'; unique among your models")
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")
    tags = TagsField(required=False, default=list)

    def validate_name(self, value: str) -> str:
        problem = model_name_error(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value


class ModelUpdateSerializer(StrictSerializer):
    description = serializers.CharField(max_length=5000, allow_blank=True, required=False, help_text="its note")
    tags = TagsField(required=False)

    def validate(self, attrs):
        if not attrs:
            raise serializers.ValidationError("Give description and/or tags.")
        return attrs


class VersionCreateSerializer(StrictSerializer):
    job = serializers.UUIDField(help_text="one of your jobs")
    checkpoint = serializers.ChoiceField(
        choices=ModelVersion.Source.values,
        default=ModelVersion.Source.BEST,
        help_text="best (highest validation accuracy), final, or epoch (with 'epoch')",
    )
    epoch = serializers.IntegerField(min_value=1, required=False, help_text="with checkpoint 'epoch'")
    description = serializers.CharField(max_length=5000, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        if attrs["checkpoint"] == ModelVersion.Source.EPOCH and "epoch" not in attrs:
            raise serializers.ValidationError({"epoch": ["Give the epoch whose checkpoint to register."]})
        if attrs["checkpoint"] != ModelVersion.Source.EPOCH and "epoch" in attrs:
            raise serializers.ValidationError({"epoch": ["Only checkpoint 'epoch' takes an epoch."]})
        return attrs


class AliasSetSerializer(StrictSerializer):
    version = serializers.IntegerField(min_value=1)


def validate_alias_name(name: str) -> None:
    problem = alias_name_error(name)
    if problem:
        raise serializers.ValidationError({"alias": [problem]})


class VersionSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model.name", read_only=True)
    job = serializers.UUIDField(source="job_uuid", read_only=True, help_text="the job it came from")
    job_exists = serializers.SerializerMethodField(help_text="false once the job was deleted (the version stays)")
    checkpoint = serializers.SerializerMethodField()
    dataset = serializers.SerializerMethodField()
    sha256 = serializers.CharField(source="file.sha256", read_only=True)
    size = serializers.IntegerField(source="file.size", read_only=True)
    aliases = serializers.SerializerMethodField()
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = [
            "model",
            "version",
            "description",
            "sha256",
            "size",
            "aliases",
            "job",
            "job_exists",
            "checkpoint",
            "dataset",
            "metrics",
            "class_names",
            "model_config",
            "job_spec",
            "created_at",
            "download_url",
        ]
        read_only_fields = fields

    def get_job_exists(self, version: ModelVersion) -> bool:
        return version.job_id is not None

    def get_checkpoint(self, version: ModelVersion) -> dict:
        return {"source": version.source, "epoch": version.checkpoint_epoch, "sha256": version.checkpoint_sha256}

    def get_dataset(self, version: ModelVersion) -> dict:
        return {
            "id": str(version.dataset_ref) if version.dataset_ref else None,
            "name": version.dataset_name,
            "sha256": version.dataset_sha256,
            "version": version.dataset_version,
        }

    def get_aliases(self, version: ModelVersion) -> list[str]:
        return sorted(a.name for a in version.aliases.all())

    def get_download_url(self, version: ModelVersion) -> str:
        path = reverse(
            "registered-model-version-download", kwargs={"name": version.model.name, "number": version.version}
        )
        return _absolute(self.context, path)


class AliasSerializer(serializers.ModelSerializer):
    alias = serializers.CharField(source="name", read_only=True)
    version = serializers.IntegerField(source="version.version", read_only=True)
    download_url = serializers.SerializerMethodField()

    class Meta:
        model = ModelAlias
        fields = ["alias", "version", "updated_at", "download_url"]
        read_only_fields = fields

    def get_download_url(self, alias: ModelAlias) -> str:
        path = reverse("registered-model-alias-download", kwargs={"name": alias.model.name, "alias": alias.name})
        return _absolute(self.context, path)


class RegisteredModelSerializer(serializers.ModelSerializer):
    latest_version = serializers.SerializerMethodField()
    aliases = serializers.SerializerMethodField(help_text="alias -> version")
    url = serializers.SerializerMethodField()
    tags = TagsField(read_only=True)

    class Meta:
        model = RegisteredModel
        fields = ["name", "url", "description", "tags", "latest_version", "aliases", "created_at", "updated_at"]
        read_only_fields = fields

    def get_latest_version(self, model: RegisteredModel) -> int | None:
        numbers = [v.version for v in model.versions.all()]
        return max(numbers) if numbers else None

    def get_aliases(self, model: RegisteredModel) -> dict[str, int]:
        return {a.name: a.version.version for a in model.aliases.all()}

    def get_url(self, model: RegisteredModel) -> str:
        return _absolute(self.context, reverse("registered-model-detail", kwargs={"name": model.name}))


class RegisteredModelDetailSerializer(RegisteredModelSerializer):
    versions = VersionSerializer(many=True, read_only=True)

    class Meta(RegisteredModelSerializer.Meta):
        fields = [*RegisteredModelSerializer.Meta.fields, "versions"]
        read_only_fields = fields
