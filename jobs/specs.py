"""A job spec: its fields, their rules, and the one function that validates it.

The API, the dashboard, the commands and the sweep scheduler all call
``job_spec_validate``; none of them runs another layer's serializer. Validation reads
the database (the owner's datasets) but writes nothing: a dataset named by a path or
an ``s3://`` URI is imported by ``jobs.services.lifecycle.job_create``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs.catalog import LR_SCHEDULES, MODEL_TYPES, OPTIMIZERS, OUTER_OPTIMIZERS, PRECISIONS
from jobs.init_from import init_from_model_error, init_from_resolve
from jobs.projects import ProjectField, TagsField, note_field
from jobs.published_models import Published, input_kind_error, model_names, model_spec_errors, published
from jobs.validation_sets import ValidationField, owner_dataset, validation_errors
from storage_app.builtin_datasets import BUILTIN_DATASETS, SHAPES_MAX_SIZE, SYNTHETIC_MAX_SIZE
from storage_app.datasets import DatasetError, dataset_by_name
from tensorfleet_site.serializers import StrictSerializer


class SpecInvalid(Exception):
    """A spec broke a rule; ``errors`` maps each field to its messages, as DRF does."""

    def __init__(self, errors: dict):
        super().__init__("; ".join(f"{field}: {' '.join(map(str, msgs))}" for field, msgs in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class DatasetImport:
    """A spec's dataset given as a local path or an ``s3://`` URI, to import at creation."""

    uri: str


class EarlyStoppingSpec(StrictSerializer):
    """End a job ``succeeded`` once ``metric`` has not improved by ``min_delta`` in
    ``patience`` evaluations."""

    metric = serializers.ChoiceField(choices=("val_accuracy", "val_loss"), default="val_accuracy")
    patience = serializers.IntegerField(min_value=1, max_value=1000, default=3)
    min_delta = serializers.FloatField(min_value=0.0, max_value=1e6, default=0.0)


@extend_schema_field({"type": "string", "maxLength": 32})
class ModelTypeField(serializers.ChoiceField):
    """A model's name: any name of up to 32 characters passes the field, and the spec's
    ``validate`` says whether a worker on the job's queue can build it. Its choices (the
    dashboard's form) are the names the workers published, read when asked; the
    built-ins' before any worker has."""

    def __init__(self, **kwargs):
        super().__init__(choices=(), **kwargs)

    def _get_choices(self):
        return {name: name for name in model_names() or MODEL_TYPES}

    def _set_choices(self, choices):
        pass  # read from the published models when asked

    choices = property(_get_choices, _set_choices)

    @property
    def grouped_choices(self):
        return self.choices

    def to_internal_value(self, data):
        if not isinstance(data, str) or not 0 < len(data.strip()) <= 32:
            raise serializers.ValidationError("A model's name, 1 to 32 characters (GET /api/v1/architectures).")
        return data.strip()

    def to_representation(self, value):
        return value


class JobCreateSerializer(StrictSerializer):
    aliases = {"dataset_path": "dataset"}

    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    model_type = ModelTypeField(help_text="a model the workers of the job's queue publish (GET /api/v1/architectures)")
    dataset = serializers.CharField(
        max_length=1000,
        help_text="a built-in dataset (digits, iris, wine, breast_cancer, synthetic, synthetic-shapes), the id or name of one of "
        "your datasets, or (also as 'dataset_path') an s3://bucket/key URI or a local path to import",
    )
    dataset_size = serializers.IntegerField(
        min_value=10,
        max_value=SYNTHETIC_MAX_SIZE,
        required=False,
        help_text="samples, for 'synthetic' and 'synthetic-shapes' only",
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
        min_value=1,
        max_value=256,
        required=False,
        help_text="torch CPU threads per shard (default: the first worker that trains it picks cores / shards)",
    )
    keep_checkpoints = serializers.IntegerField(
        min_value=1,
        max_value=10000,
        default=settings.TENSORFLEET_KEEP_CHECKPOINTS,
        help_text="epoch checkpoints kept besides the best and the final one",
    )
    # The model's own arguments, and the recipe of a plain PyTorch training script.
    model_args = serializers.DictField(
        required=False, default=dict, help_text="keyword arguments of the model's builder (GET /api/v1/architectures)"
    )
    weight_decay = serializers.FloatField(min_value=0.0, max_value=1.0, default=0.0)
    nesterov = serializers.BooleanField(default=False, help_text="Nesterov momentum, for sgd with momentum")
    lr_schedule = serializers.ChoiceField(choices=LR_SCHEDULES, default="constant")
    warmup_epochs = serializers.IntegerField(min_value=0, max_value=settings.TENSORFLEET_MAX_EPOCHS, default=0)
    grad_clip_norm = serializers.FloatField(
        min_value=1e-6, max_value=1e6, required=False, allow_null=True, default=None
    )
    label_smoothing = serializers.FloatField(min_value=0.0, max_value=0.99, default=0.0)
    augment = serializers.BooleanField(default=False, help_text="random crop with padding and horizontal flip (images)")
    precision = serializers.ChoiceField(
        choices=PRECISIONS, default="fp32", help_text="bf16 and fp16 autocast on CUDA; bf16 also on the CPU"
    )
    eval_every = serializers.IntegerField(
        min_value=1,
        max_value=settings.TENSORFLEET_MAX_EPOCHS,
        default=1,
        help_text="evaluate every k epochs and at the last",
    )
    early_stopping = EarlyStoppingSpec(required=False, allow_null=True, default=None)
    # Rounds (README, "Rounds and outer optimizers"): DiLoCo's H and its outer step.
    sync_every_steps = serializers.IntegerField(
        min_value=1,
        max_value=10_000_000,
        required=False,
        allow_null=True,
        default=None,
        help_text="H: local optimiser steps per shard between synchronisations (empty: once per epoch)",
    )
    outer_optimizer = serializers.ChoiceField(
        choices=OUTER_OPTIMIZERS,
        default="average",
        help_text="how a round moves the global weights: the shards' average, or sgd / nesterov (DiLoCo) on it",
    )
    outer_learning_rate = serializers.FloatField(min_value=1e-6, max_value=10.0, default=0.7, help_text="sgd, nesterov")
    outer_momentum = serializers.FloatField(min_value=0.0, max_value=0.999, default=0.9, help_text="nesterov")
    validation = ValidationField()
    init_from = serializers.JSONField(
        required=False,
        allow_null=True,
        default=None,
        help_text='start epoch 1 from {"job": "<id>", "checkpoint": "final" | "best" | <epoch>} or '
        '{"weights": "<id or name>"} (/api/v1/weights); a different class count re-initialises the head',
    )
    # Organising (jobs/projects.py); PATCH /jobs/<id> changes these three only.
    project = ProjectField(required=False, allow_null=True, default=None)
    tags = TagsField(required=False, default=list)
    note = note_field()

    def validate_dataset(self, value: str):
        """A built-in name, or one of the owner's datasets (by name: its newest version, or
        ``name@3``; or by id), or a path/URI to import."""
        value = value.strip()
        if value in BUILTIN_DATASETS:
            return value
        owner = self.context.get("owner")
        if callable(owner):  # resolved only when needed (the command line looks the user up lazily)
            owner = owner()
        if owner is None:
            raise serializers.ValidationError(f"Unknown dataset {value!r}.")
        try:  # by name (its newest version, or name@3), then by id
            found = dataset_by_name(owner, value) or owner_dataset(owner, value)
        except DatasetError as exc:
            raise serializers.ValidationError(str(exc)) from None
        if found is not None:
            return found
        if value.startswith(("s3://", "/")):
            return DatasetImport(uri=value)  # imported by the service, once the rest of the spec is valid
        raise serializers.ValidationError(
            f"Unknown dataset {value!r}: not a built-in ({', '.join(sorted(BUILTIN_DATASETS))}) nor one of yours."
        )

    def validate_init_from(self, value):
        if value is None:  # nothing to resolve: the owner is not looked up (the command line does that lazily)
            return None
        owner = self.context.get("owner")
        return init_from_resolve(owner=owner() if callable(owner) else owner, value=value)

    def published_models(self) -> Published:
        """What the workers published, read once per serializer (a sweep validates its trials with one)."""
        if not hasattr(self, "_published"):
            self._published = published()
        return self._published

    def validate(self, attrs):
        catalog = self.published_models()
        model_args, errors = model_spec_errors(
            model_type=attrs["model_type"],
            model_args=attrs.get("model_args") or {},
            queue=attrs["queue"],
            catalog=catalog,
        )
        attrs["model_args"] = model_args
        errors = {**recipe_errors(attrs), **errors}
        if not isinstance(attrs["dataset"], DatasetImport):  # an import is checked once imported
            errors = {**dataset_errors(attrs, attrs["dataset"], catalog=catalog), **errors}
        if errors:
            raise serializers.ValidationError(errors)
        if attrs.get("init_from") is not None:  # the source's model, then the reference the job stores
            source = attrs["init_from"]
            problem = init_from_model_error(source, model_type=attrs["model_type"], model_args=attrs.get("model_args"))
            if problem:
                raise serializers.ValidationError({"init_from": [problem]})
            attrs["init_from"] = source.reference
        return attrs


def dataset_errors(attrs: dict, dataset, *, catalog: Published | None = None) -> dict:
    """The rules that need the dataset itself (a built-in's name or a Dataset row), the
    input the model takes among them (``catalog``: what the workers published)."""
    if isinstance(dataset, str):
        builtin = BUILTIN_DATASETS[dataset]
        name, is_image, is_synthetic = builtin.name, builtin.is_image, builtin.name in ("synthetic", "synthetic-shapes")
    else:
        name, is_image, is_synthetic = dataset.name, dataset.is_image, False
    errors = {}
    catalog = catalog if catalog is not None else published()
    wrong_input = input_kind_error(model_type=attrs["model_type"], is_image=is_image, dataset=name, catalog=catalog)
    if wrong_input:
        errors["model_type"] = [wrong_input]
    if attrs.get("dataset_size") is not None and not is_synthetic:
        errors["dataset_size"] = ["Only the 'synthetic' and 'synthetic-shapes' datasets take a size."]
    elif name == "synthetic-shapes" and (attrs.get("dataset_size") or 0) > SHAPES_MAX_SIZE:
        errors["dataset_size"] = [f"'synthetic-shapes' holds at most {SHAPES_MAX_SIZE} samples."]
    if attrs.get("augment") and not is_image:
        errors["augment"] = [f"augment (random crop and flip) needs an image dataset; '{name}' is tabular."]
    return {**errors, **validation_errors(attrs, dataset)}


def recipe_errors(attrs: dict) -> dict:
    """The training recipe's rules across fields (each field checks its own range)."""
    errors = {}
    if attrs.get("nesterov") and (attrs.get("optimizer") != "sgd" or not attrs.get("momentum")):
        errors["nesterov"] = ["Nesterov momentum needs optimizer 'sgd' with a momentum above 0."]
    warmup, epochs = attrs.get("warmup_epochs") or 0, attrs.get("epochs") or 0
    if warmup and warmup >= epochs:
        errors["warmup_epochs"] = [f"warmup_epochs ({warmup}) must be fewer than epochs ({epochs})."]
    gpu_queues = settings.TENSORFLEET_GPU_QUEUES
    if attrs.get("precision") == "fp16" and attrs.get("queue") not in gpu_queues:
        errors["precision"] = [
            f"fp16 trains on a GPU only, and queue '{attrs.get('queue')}' is not a GPU queue "
            f"({', '.join(gpu_queues) or 'none is configured'}): use bf16 or fp32, or a GPU queue."
        ]
    return errors


def job_spec_validate(*, owner, data) -> dict:
    """The validated spec, or SpecInvalid with field-level messages. ``owner`` may be a
    callable (the command line looks the user up only when a dataset needs it)."""
    spec = JobCreateSerializer(data=data, context={"owner": owner})
    if not spec.is_valid():
        raise SpecInvalid(dict(spec.errors))
    return dict(spec.validated_data)


def spec_fields() -> list[str]:
    """The names a job spec may hold, in the order the API documents them."""
    return list(JobCreateSerializer().fields)
