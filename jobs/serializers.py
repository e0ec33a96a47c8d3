"""Input and output shapes of the jobs API."""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs import queue_consumers
from jobs.catalog import RECIPE_FIELDS
from jobs.models import EpochMetric, Job, Task, TaskLog
from jobs.projects import TagsField
from jobs.specs import JobCreateSerializer  # noqa: F401 - the API's request schema
from storage_app.models import Checkpoint
from tensorfleet_site.serializers import StrictSerializer  # noqa: F401 - re-exported for the apps' APIs


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
    waiting_reason = serializers.SerializerMethodField(
        help_text="why a queued or running job is not being trained, e.g. \"waiting: no worker consumes queue 'gpu'\"; "
        "null when nothing is known to hold it"
    )
    project = serializers.UUIDField(source="project_id", read_only=True, allow_null=True)
    project_name = serializers.SerializerMethodField()
    tags = TagsField(read_only=True)

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
            "dataset_version",
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
            *RECIPE_FIELDS,  # the spec's recipe, stored on the job as given (jobs/catalog.py)
            "rounds_per_epoch",
            "completed_rounds",
            "init_from",
            "class_names",
            "stop_reason",
            "input_shape",
            "num_classes",
            "created_at",
            "started_at",
            "finished_at",
            "error",
            "error_class",
            "traceback",
            "waiting_reason",
            "sweep",
            "trial_number",
            "project",
            "project_name",
            "tags",
            "note",
        ]
        read_only_fields = fields

    def get_project_name(self, job: Job) -> str | None:
        return job.project.name if job.project is not None else None

    @extend_schema_field(JobMetricsSerializer)
    def get_metrics(self, job: Job) -> dict:
        return {
            "train_loss": job.train_loss,
            "val_loss": job.val_loss,
            "val_accuracy": job.val_accuracy,
            "best_val_accuracy": job.best_val_accuracy,
        }

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_waiting_reason(self, job: Job) -> str | None:
        return queue_consumers.job_waiting_reason(job)


class JobCreatedSerializer(JobSerializer):
    """The answer to a submission: the job, and what the submitter should know about it."""

    warnings = serializers.SerializerMethodField(
        help_text="e.g. that no worker consumes the job's queue (it waits until one starts)"
    )

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "warnings"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_warnings(self, job: Job) -> list[str]:
        return queue_consumers.queue_warnings(job.queue)


class TaskSerializer(serializers.ModelSerializer):
    log_url = serializers.SerializerMethodField(help_text="the shard's log lines (GET)")

    class Meta:
        model = Task
        fields = [
            "id",
            "epoch",
            "round",
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
            "log_url",
        ]
        read_only_fields = fields

    def get_log_url(self, task: Task) -> str:
        path = reverse("job-task-log", kwargs={"pk": task.job_id, "task_id": task.id})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class TaskLogSerializer(serializers.ModelSerializer):
    """A shard's or an aggregate's log: its last lines, oldest first, one per line of ``text``
    (``<UTC time> <LEVEL> <message>``); ``dropped`` older lines went past the size cap."""

    class Meta:
        model = TaskLog
        fields = ["epoch", "kind", "shard", "text", "lines", "dropped", "updated_at"]
        read_only_fields = fields


def class_labels(job: Job) -> list[str]:
    """The job's class names in index order (its dataset's), else the indices as text."""
    names = job.class_names or []
    if len(names) == job.num_classes:
        return [str(name) for name in names]
    return [str(index) for index in range(job.num_classes)]


class ConfusionMatrixSerializer(serializers.Serializer):
    classes = serializers.ListField(child=serializers.CharField(), help_text="class names, index order")
    rows = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="rows[true][predicted]: validation samples of class `true` predicted as class `predicted`",
    )


class EpochMetricSerializer(serializers.ModelSerializer):
    """One epoch's numbers. The validation metrics are null on an epoch the job's
    ``eval_every`` skipped; the confusion matrix is kept for up to 100 classes."""

    per_class_accuracy = serializers.SerializerMethodField(
        help_text="class name -> accuracy on that class's validation samples (null: none in the split)"
    )
    confusion_matrix = serializers.SerializerMethodField()

    class Meta:
        model = EpochMetric
        fields = [
            "epoch",
            "train_loss",
            "val_loss",
            "val_accuracy",
            "top5_accuracy",
            "per_class_accuracy",
            "confusion_matrix",
            "samples",
            "samples_per_s",
            "duration_s",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.DictField(child=serializers.FloatField(allow_null=True), allow_null=True))
    def get_per_class_accuracy(self, metric: EpochMetric) -> dict | None:
        if metric.per_class_accuracy is None:
            return None
        return dict(zip(class_labels(metric.job), metric.per_class_accuracy, strict=False))

    @extend_schema_field(ConfusionMatrixSerializer(allow_null=True))
    def get_confusion_matrix(self, metric: EpochMetric) -> dict | None:
        if metric.confusion_matrix is None:
            return None
        return {"classes": class_labels(metric.job), "rows": metric.confusion_matrix}


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
