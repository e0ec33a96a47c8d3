"""Input and output shapes of the jobs API."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs.models import EpochMetric, Job, Task
from storage_app.models import Checkpoint
from workers.catalog import BUILTIN_DATASETS, MODEL_TYPES, OPTIMIZERS, SYNTHETIC_MAX_SIZE


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, with one message per unknown field."""

    aliases: dict[str, str] = {}

    def to_internal_value(self, data):
        if not hasattr(data, "keys"):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        if any(alias in data for alias in self.aliases):
            data = dict(data.items())
            for alias, name in self.aliases.items():
                if alias in data:
                    if name in data:
                        raise serializers.ValidationError({alias: [f"Give either '{name}' or '{alias}', not both."]})
                    data[name] = data.pop(alias)
        unknown = sorted(set(data.keys()) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({field: ["Unknown field."] for field in unknown})
        return super().to_internal_value(data)


class JobCreateSerializer(StrictSerializer):
    aliases = {"dataset_path": "dataset"}

    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    model_type = serializers.ChoiceField(choices=MODEL_TYPES)
    dataset = serializers.CharField(
        max_length=1000,
        help_text="a built-in dataset (digits, iris, wine, breast_cancer, synthetic), the id or name of one of "
        "your datasets, or (also as 'dataset_path') an s3://bucket/key URI or a local path to import",
    )
    dataset_size = serializers.IntegerField(
        min_value=10, max_value=SYNTHETIC_MAX_SIZE, required=False, help_text="samples, for 'synthetic' only"
    )
    num_workers = serializers.IntegerField(
        min_value=1, max_value=settings.TENSORFLEET_MAX_SHARDS, default=1, help_text="data shards per epoch"
    )
    epochs = serializers.IntegerField(min_value=1, max_value=settings.TENSORFLEET_MAX_EPOCHS, default=10)
    batch_size = serializers.IntegerField(min_value=1, max_value=65536, default=32)
    learning_rate = serializers.FloatField(min_value=1e-8, max_value=10.0, default=1e-3)
    optimizer = serializers.ChoiceField(choices=OPTIMIZERS, default="adam")
    momentum = serializers.FloatField(min_value=0.0, max_value=0.999, default=0.0, help_text="for sgd")
    seed = serializers.IntegerField(min_value=0, max_value=2**31 - 1, default=0)
    queue = serializers.ChoiceField(choices=settings.TENSORFLEET_QUEUES, default=settings.TENSORFLEET_QUEUES[0])
    threads = serializers.IntegerField(
        min_value=1, max_value=256, required=False, help_text="torch CPU threads per shard (default: cores / shards)"
    )
    keep_checkpoints = serializers.IntegerField(
        min_value=1,
        max_value=10000,
        default=settings.TENSORFLEET_KEEP_CHECKPOINTS,
        help_text="epoch checkpoints kept besides the best and the final one",
    )

    def validate_dataset(self, value: str):
        """A built-in name, or one of the owner's datasets (by id or name), or a path/URI to import."""
        value = value.strip()
        if value in BUILTIN_DATASETS:
            return value
        owner = self.context.get("owner")
        if callable(owner):  # resolved only when needed (the command line looks the user up lazily)
            owner = owner()
        if owner is None:
            raise serializers.ValidationError(f"Unknown dataset {value!r}.")
        from storage_app.models import Dataset

        mine = Dataset.objects.filter(owner=owner)
        found = mine.filter(name=value).first()
        if found is None:
            try:
                found = mine.filter(id=uuid.UUID(value)).first()
            except ValueError:
                found = None
        if found is not None:
            return found
        if value.startswith(("s3://", "/")):
            from storage_app.datasets import DatasetError, dataset_import

            try:
                return dataset_import(owner=owner, uri=value)
            except DatasetError as exc:
                raise serializers.ValidationError(str(exc)) from None
        raise serializers.ValidationError(
            f"Unknown dataset {value!r}: not a built-in ({', '.join(sorted(BUILTIN_DATASETS))}) nor one of yours."
        )

    def validate(self, attrs):
        dataset = attrs["dataset"]
        if isinstance(dataset, str):
            builtin = BUILTIN_DATASETS[dataset]
            name, is_image, is_synthetic = builtin.name, builtin.is_image, builtin.name == "synthetic"
        else:
            name, is_image, is_synthetic = dataset.name, dataset.is_image, False
        errors = {}
        if attrs["model_type"] == "cnn" and not is_image:
            errors["model_type"] = [f"cnn needs an image dataset; '{name}' is tabular (use mlp or logreg)."]
        if "dataset_size" in attrs and not is_synthetic:
            errors["dataset_size"] = ["Only the 'synthetic' dataset takes a size."]
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class JobMetricsSerializer(serializers.Serializer):
    train_loss = serializers.FloatField(allow_null=True)
    val_loss = serializers.FloatField(allow_null=True)
    val_accuracy = serializers.FloatField(allow_null=True)
    best_val_accuracy = serializers.FloatField(allow_null=True)


class JobSerializer(serializers.ModelSerializer):
    progress = serializers.FloatField(read_only=True)
    metrics = serializers.SerializerMethodField()
    url = serializers.HyperlinkedIdentityField(view_name="job-detail")
    owner = serializers.CharField(source="owner.get_username", read_only=True)
    dataset_id = serializers.UUIDField(source="dataset_ref_id", read_only=True, allow_null=True)
    traceback = serializers.CharField(source="error_detail", read_only=True)
    sweep = serializers.UUIDField(source="sweep_id", read_only=True, allow_null=True, help_text="set on sweep trials")

    class Meta:
        model = Job
        fields = [
            "id",
            "url",
            "name",
            "owner",
            "status",
            "progress",
            "total_tasks",
            "completed_tasks",
            "current_epoch",
            "completed_epochs",
            "metrics",
            "model_type",
            "dataset",
            "dataset_id",
            "dataset_sha256",
            "dataset_size",
            "num_workers",
            "epochs",
            "batch_size",
            "learning_rate",
            "optimizer",
            "momentum",
            "seed",
            "queue",
            "threads",
            "keep_checkpoints",
            "input_shape",
            "num_classes",
            "created_at",
            "started_at",
            "finished_at",
            "error",
            "error_class",
            "traceback",
            "sweep",
            "trial_number",
        ]
        read_only_fields = fields

    @extend_schema_field(JobMetricsSerializer)
    def get_metrics(self, job: Job) -> dict:
        return {
            "train_loss": job.train_loss,
            "val_loss": job.val_loss,
            "val_accuracy": job.val_accuracy,
            "best_val_accuracy": job.best_val_accuracy,
        }


class TaskSerializer(serializers.ModelSerializer):
    class Meta:
        model = Task
        fields = [
            "epoch",
            "shard",
            "status",
            "attempts",
            "worker",
            "started_at",
            "finished_at",
            "duration_s",
            "samples",
            "train_loss",
            "error",
            "error_class",
        ]
        read_only_fields = fields


class EpochMetricSerializer(serializers.ModelSerializer):
    class Meta:
        model = EpochMetric
        fields = [
            "epoch",
            "train_loss",
            "val_loss",
            "val_accuracy",
            "samples",
            "samples_per_s",
            "duration_s",
            "created_at",
        ]
        read_only_fields = fields


class CheckpointSerializer(serializers.ModelSerializer):
    download_url = serializers.SerializerMethodField()
    presigned_url = serializers.SerializerMethodField(help_text="a short-lived direct link, when storage is S3")

    class Meta:
        model = Checkpoint
        fields = [
            "id",
            "epoch",
            "kind",
            "sha256",
            "size",
            "val_accuracy",
            "created_at",
            "download_url",
            "presigned_url",
        ]
        read_only_fields = fields

    def get_presigned_url(self, checkpoint: Checkpoint) -> str | None:
        storage = checkpoint.file.storage
        if not getattr(storage, "querystring_auth", False):
            return None  # local files: download through the API
        return storage.url(checkpoint.file.name)

    def get_download_url(self, checkpoint: Checkpoint) -> str:
        path = reverse("job-checkpoint-download", kwargs={"pk": checkpoint.job_id, "checkpoint_id": checkpoint.id})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path
