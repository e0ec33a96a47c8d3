"""Jobs, their tasks (one per epoch x shard) and per-epoch metrics.

The database is the source of truth: Celery messages carry only IDs, and every
state change of a Task is a conditional update on its row.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Status(models.TextChoices):
    QUEUED = "queued", "queued"
    RUNNING = "running", "running"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed"
    CANCELLED = "cancelled", "cancelled"


ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)
FINAL_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)


class JobQuerySet(models.QuerySet):
    def active(self) -> JobQuerySet:
        """Queued or running. Reachable through any relation (``dataset.jobs.active()``),
        so another app can ask without importing this one."""
        return self.filter(status__in=ACTIVE_STATUSES)


class Project(models.Model):
    """A named group of jobs and sweeps, owned by one user and shared with others through
    ``ProjectMember`` rows: a reader sees its jobs and sweeps, a writer also submits into it
    and cancels, resumes, deletes and edits them (jobs/selectors.py holds the rule)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="owned_projects")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True, max_length=5000)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="project_unique_owner_name")]

    def __str__(self) -> str:
        return self.name


class ProjectMember(models.Model):
    """Another user's access to a project (the owner needs no row)."""

    class Role(models.TextChoices):
        READ = "read", "read: sees the project's jobs and sweeps"
        WRITE = "write", "write: also submits into the project, and cancels, resumes, deletes and edits"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="members")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="project_memberships")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.READ)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project", "user"]
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="projectmember_unique_project_user")]

    def __str__(self) -> str:
        return f"{self.user} {self.role} on {self.project}"


class Tag(models.Model):
    """A label put on jobs and sweeps; one row per distinct name, shared by everyone (a
    tag tells nothing by itself: the rows it labels are read through their visibility)."""

    name = models.CharField(max_length=50, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="jobs")
    name = models.CharField(max_length=200, blank=True)

    # The spec: what to train and how.
    model_type = models.CharField(max_length=32)
    dataset = models.CharField(max_length=200, help_text="a built-in dataset's name, or the uploaded dataset's name")
    dataset_ref = models.ForeignKey(
        "storage_app.Dataset", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    dataset_sha256 = models.CharField(max_length=64, blank=True, help_text="content of an uploaded dataset")
    dataset_version = models.PositiveIntegerField(
        null=True, blank=True, help_text="the uploaded dataset's version it trained on (its newest at submission)"
    )
    dataset_size = models.PositiveIntegerField(null=True, blank=True, help_text="samples, for synthetic data")
    num_workers = models.PositiveIntegerField(help_text="data shards trained in parallel each epoch")
    epochs = models.PositiveIntegerField()
    batch_size = models.PositiveIntegerField()
    learning_rate = models.FloatField()
    optimizer = models.CharField(max_length=16)
    momentum = models.FloatField(default=0.0)
    seed = models.BigIntegerField(default=0)
    queue = models.CharField(max_length=64)
    threads = models.PositiveIntegerField(help_text="torch CPU threads per shard task, fixed for the job")
    keep_checkpoints = models.PositiveIntegerField(default=3, help_text="epoch checkpoints kept besides best and final")
    input_shape = models.JSONField()
    num_classes = models.PositiveIntegerField()
    sweep = models.ForeignKey(
        "Sweep", null=True, blank=True, on_delete=models.SET_NULL, related_name="trials", help_text="a sweep's trial"
    )
    trial_number = models.PositiveIntegerField(null=True, blank=True, help_text="1-based, within its sweep")
    # Organising: a project, tags and a note, settable at creation and later (PATCH).
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    tags = models.ManyToManyField(Tag, blank=True, related_name="jobs")
    note = models.TextField(blank=True, max_length=10000)
    # The model and the recipe (a plain PyTorch script's choices).
    model_args = models.JSONField(default=dict, blank=True, help_text="keyword arguments of the model's builder")
    weight_decay = models.FloatField(default=0.0)
    nesterov = models.BooleanField(default=False)
    lr_schedule = models.CharField(max_length=16, default="constant")
    warmup_epochs = models.PositiveIntegerField(default=0)
    grad_clip_norm = models.FloatField(null=True, blank=True)
    label_smoothing = models.FloatField(default=0.0)
    augment = models.BooleanField(default=False, help_text="random crop with padding and horizontal flip (images)")
    precision = models.CharField(max_length=8, default="fp32")
    eval_every = models.PositiveIntegerField(default=1, help_text="evaluate every k epochs, and at the last")
    early_stopping = models.JSONField(null=True, blank=True, help_text="metric, patience, min_delta")
    init_from = models.JSONField(null=True, blank=True, help_text="a checkpoint of one of your jobs, or weights")
    validation_fraction = models.FloatField(default=0.2)
    validation_ref = models.ForeignKey(
        "storage_app.Dataset", null=True, blank=True, on_delete=models.SET_NULL, related_name="validated_jobs"
    )
    validation_sha256 = models.CharField(max_length=64, blank=True)
    class_names = models.JSONField(default=list, blank=True, help_text="the labels' names, index order")
    stop_reason = models.CharField(max_length=200, blank=True, help_text="why it ended before its last epoch")
    # Rounds (README, "Rounds and outer optimizers"): H local steps per shard between syncs.
    sync_every_steps = models.PositiveIntegerField(null=True, blank=True, help_text="H; empty: one round per epoch")
    outer_optimizer = models.CharField(max_length=16, default="average", help_text="average, sgd or nesterov")
    outer_learning_rate = models.FloatField(default=0.7)
    outer_momentum = models.FloatField(default=0.9)

    # Where it stands.
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    total_tasks = models.PositiveIntegerField()
    completed_tasks = models.PositiveIntegerField(default=0)
    current_epoch = models.PositiveIntegerField(default=0, help_text="last epoch started (1-based)")
    rounds_per_epoch = models.PositiveIntegerField(default=1, help_text="0 until the first worker counts them")
    completed_rounds = models.PositiveIntegerField(default=0, help_text="rounds recorded, over all epochs")
    round_state_key = models.CharField(
        max_length=500, blank=True, help_text="global weights and outer state after the last round (sha256 in the key)"
    )
    completed_epochs = models.PositiveIntegerField(default=0)
    train_loss = models.FloatField(null=True, blank=True)
    val_loss = models.FloatField(null=True, blank=True)
    val_accuracy = models.FloatField(null=True, blank=True)
    best_val_accuracy = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    error_class = models.CharField(
        max_length=32, blank=True, help_text="worker_lost, time_limit, out_of_memory, user_error, infrastructure"
    )
    error_detail = models.TextField(blank=True, help_text="traceback of the failure")

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["owner", "-created_at"]),
            models.Index(fields=["owner", "status", "-created_at"]),
            models.Index(fields=["status"]),
        ]
        constraints = [
            models.UniqueConstraint(fields=["sweep", "trial_number"], name="job_unique_sweep_trial_number"),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.model_type + '/' + self.dataset} ({self.id})"

    @property
    def progress(self) -> float:
        return round(self.completed_tasks / self.total_tasks, 4) if self.total_tasks else 0.0

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def validation(self) -> float | str | None:
        """The spec's ``validation`` as the API takes it: the fraction held out, or the id of
        the dataset it validates on (None once that dataset is deleted)."""
        if self.validation_sha256:
            return str(self.validation_ref_id) if self.validation_ref_id else None
        return self.validation_fraction

    @property
    def model_config(self) -> dict:
        """What the checkpoints' metadata says of the model (``workers.weights.model_config``):
        ``model_args`` only when the job gave some, so a job without keeps its bytes."""
        config = {"model_type": self.model_type, "input_shape": list(self.input_shape), "num_classes": self.num_classes}
        if self.model_args:
            config["model_args"] = dict(self.model_args)
        return config


class Task(models.Model):
    """One shard of one round of one epoch: the unit of work a Celery worker executes."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="tasks")
    epoch = models.PositiveIntegerField()
    round = models.PositiveIntegerField(default=1, help_text="1-based, within its epoch")
    start_key = models.CharField(
        max_length=500, blank=True, help_text="the global state its round starts from; empty: the last checkpoint"
    )
    shard = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    lost = models.PositiveIntegerField(default=0, help_text="times its worker died under it")
    celery_id = models.CharField(max_length=100, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True, help_text="last message sent for it")
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="last sign of life while running")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_s = models.FloatField(null=True, blank=True)
    samples = models.PositiveIntegerField(null=True, blank=True)
    train_loss = models.FloatField(null=True, blank=True)
    output_key = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    error_class = models.CharField(max_length=32, blank=True)

    class Meta:
        ordering = ["epoch", "round", "shard"]
        constraints = [
            models.UniqueConstraint(fields=["job", "epoch", "round", "shard"], name="task_unique_job_epoch_round_shard")
        ]
        indexes = [models.Index(fields=["status", "finished_at"]), models.Index(fields=["status", "heartbeat_at"])]

    def __str__(self) -> str:
        return f"job {self.job_id} epoch {self.epoch} round {self.round} shard {self.shard}"


class TaskLog(models.Model):
    """The log lines of one shard's task or one epoch's aggregate: its start, progress at
    the heartbeat's cadence, warnings and the error, the last ``TENSORFLEET_TASK_LOG_LINES``
    lines and ``TENSORFLEET_TASK_LOG_BYTES`` bytes of them (jobs/services/task_logs.py)."""

    class Kind(models.TextChoices):
        SHARD = "shard", "shard"
        AGGREGATE = "aggregate", "aggregate"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="task_logs")
    epoch = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices)
    shard = models.PositiveIntegerField(default=0, help_text="0 for an aggregate")
    text = models.TextField(blank=True)
    lines = models.PositiveIntegerField(default=0, help_text="lines in text")
    dropped = models.PositiveIntegerField(default=0, help_text="older lines dropped to stay under the cap")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["epoch", "kind", "shard"]
        constraints = [
            models.UniqueConstraint(
                fields=["job", "epoch", "kind", "shard"], name="tasklog_unique_job_epoch_kind_shard"
            )
        ]

    def __str__(self) -> str:
        return f"job {self.job_id} epoch {self.epoch} {self.kind} {self.shard}"


class EpochMetric(models.Model):
    """What one epoch gave, written once by the aggregate step."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="epoch_metrics")
    epoch = models.PositiveIntegerField()
    train_loss = models.FloatField()
    val_loss = models.FloatField(null=True, blank=True, help_text="empty for an epoch eval_every skipped")
    val_accuracy = models.FloatField(null=True, blank=True)
    top5_accuracy = models.FloatField(null=True, blank=True, help_text="with more than 10 classes")
    per_class_accuracy = models.JSONField(null=True, blank=True)
    confusion_matrix = models.JSONField(null=True, blank=True, help_text="rows: true class, columns: predicted")
    samples = models.PositiveIntegerField()
    samples_per_s = models.FloatField()
    duration_s = models.FloatField(help_text="first shard started to aggregate done")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["epoch"]
        constraints = [models.UniqueConstraint(fields=["job", "epoch"], name="epochmetric_unique_job_epoch")]

    def __str__(self) -> str:
        return f"job {self.job_id} epoch {self.epoch}"


class Sweep(models.Model):
    """A hyperparameter search: trials are ordinary Jobs (``Job.sweep``), at most
    ``max_concurrent`` of them active at a time, the weak ones stopped early (jobs/asha.py).
    The scheduling lives in jobs/sweeps.py."""

    class Search(models.TextChoices):
        GRID = "grid", "grid"
        RANDOM = "random", "random"
        TPE = "tpe", "tpe (Optuna's tree-structured Parzen estimator)"

    class Mode(models.TextChoices):
        MAX = "max", "max"
        MIN = "min", "min"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sweeps")
    name = models.CharField(max_length=200, blank=True)

    # The spec.
    base = models.JSONField(default=dict, help_text="job fields every trial shares")
    space = models.JSONField(help_text="field -> choice, uniform, log_uniform, int_uniform or a fixed value")
    search = models.CharField(max_length=16, choices=Search.choices, default=Search.RANDOM)
    max_trials = models.PositiveIntegerField(help_text="trial budget")
    max_concurrent = models.PositiveIntegerField(help_text="trials queued or running at once, at most")
    metric = models.CharField(max_length=32, default="val_accuracy")
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.MAX)
    early_stopping = models.JSONField(null=True, blank=True, help_text='e.g. {"type": "asha", ...}; null: none')
    seed = models.BigIntegerField(default=0, help_text="seeds the sampling of the trials")
    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.SET_NULL, related_name="sweeps")
    tags = models.ManyToManyField(Tag, blank=True, related_name="sweeps")
    note = models.TextField(blank=True, max_length=10000)

    # Where it stands.
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    best_trial = models.ForeignKey(Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    best_metric = models.FloatField(null=True, blank=True, help_text="the best trial's metric at its last epoch")
    error = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"]), models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"{self.name or 'sweep'} ({self.id})"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


class ModelOffer(models.Model):
    """A model a worker can build, as the worker published it when it started: its name,
    the arguments its builder takes (the schema of a job's ``model_args``), the input it
    takes, and the queue the worker consumes. The API reads these instead of importing
    torch or the plugins."""

    class Input(models.TextChoices):
        IMAGES = "images", "images (channels x height x width)"
        TABULAR = "tabular", "tabular (features)"
        ANY = "any", "images or tabular"

    worker = models.CharField(max_length=200, help_text="the Celery node name")
    queue = models.CharField(max_length=64)
    name = models.CharField(max_length=100)
    arguments = models.JSONField(default=dict, help_text="name -> {type, default, required}")
    input_kind = models.CharField(max_length=8, choices=Input.choices, default=Input.ANY)
    description = models.TextField(blank=True)
    source = models.CharField(max_length=300, blank=True, help_text="the entry point: package and object")
    published_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "queue", "worker"]
        constraints = [
            models.UniqueConstraint(fields=["worker", "queue", "name"], name="modeloffer_unique_worker_queue_name")
        ]

    def __str__(self) -> str:
        return f"{self.name} on {self.queue} ({self.worker})"
