"""A job's validation data (spec field ``validation``): a fraction of its training
dataset, held out by the job's seed, or the whole of another of the owner's datasets
with the same features and classes (the training dataset then trains whole)."""

from __future__ import annotations

import uuid

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from storage_app.builtin_datasets import BUILTIN_DATASETS
from storage_app.models import Dataset

DEFAULT_FRACTION = 0.2
MAX_FRACTION = 0.9


def owner_dataset(owner, value: str) -> Dataset | None:
    """One of ``owner``'s datasets by name, then by id; None when there is none."""
    mine = Dataset.objects.filter(owner=owner)
    found = mine.filter(name=value).first()
    if found is None:
        try:
            found = mine.filter(id=uuid.UUID(value)).first()
        except ValueError:
            found = None
    return found


def _fraction(value: float) -> float:
    if not 0 < value <= MAX_FRACTION:  # NaN fails too
        raise serializers.ValidationError(
            f"A validation fraction is more than 0 and at most {MAX_FRACTION}; got {value!r}."
        )
    return float(value)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": MAX_FRACTION},
            {"type": "string"},
        ],
        "default": DEFAULT_FRACTION,
    }
)
class ValidationField(serializers.Field):
    """A fraction in (0, 0.9], or the id or name of one of the owner's datasets (a string
    that reads as a number is a fraction)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("default", DEFAULT_FRACTION)
        kwargs.setdefault(
            "help_text",
            f"the fraction of the dataset held out for validation (default {DEFAULT_FRACTION}), or the id or "
            "name of another of your datasets with the same features and classes to validate on",
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> float | Dataset:
        if isinstance(data, (int, float)) and not isinstance(data, bool):
            return _fraction(data)
        if not isinstance(data, str) or not data.strip() or len(data) > 1000:
            raise serializers.ValidationError("Give a fraction (e.g. 0.2) or the id or name of one of your datasets.")
        text = data.strip()
        try:
            return _fraction(float(text))
        except ValueError:
            pass
        owner = self.context.get("owner")
        owner = owner() if callable(owner) else owner
        found = owner_dataset(owner, text) if owner is not None else None
        if found is not None:
            return found
        if text in BUILTIN_DATASETS:
            raise serializers.ValidationError(
                f"{text!r} is a built-in dataset; validate on one of your own datasets, or give a fraction."
            )
        raise serializers.ValidationError(
            f"Unknown dataset {text!r}: validation is a fraction or one of your datasets."
        )

    def to_representation(self, value):
        return str(value.id) if isinstance(value, Dataset) else value


def _described(dataset) -> tuple[str, list[int], int, list[str], str]:
    """Name, input shape, classes, class names and content of a built-in's name or a Dataset."""
    if isinstance(dataset, str):
        builtin = BUILTIN_DATASETS[dataset]
        return builtin.name, list(builtin.input_shape), builtin.num_classes, [], ""
    return dataset.name, list(dataset.input_shape), dataset.num_classes, list(dataset.class_names), dataset.sha256


def validation_errors(attrs: dict, dataset) -> dict:
    """The rules between the training dataset (a built-in's name or a Dataset) and the
    spec's ``validation``: a fraction must leave samples on both sides; a dataset must
    be other data with the same features and classes (and class names, when both have them)."""
    validation = attrs.get("validation", DEFAULT_FRACTION)
    name, shape, classes, names, sha = _described(dataset)
    if not isinstance(validation, Dataset):
        n = getattr(dataset, "num_samples", None)
        cut = int((1 - validation) * n) if n else 1  # the workers' cut (workers.splits)
        if n and not 0 < cut < n:
            return {
                "validation": [f"A fraction of {validation} leaves nothing to train or validate on of {n} samples."]
            }
        return {}
    other = validation
    if other.sha256 == sha:
        return {"validation": [f"'{other.name}' holds the same data as '{name}'; validate on other data."]}
    differs = []
    if list(other.input_shape) != shape:
        differs.append(f"features {shape} in '{name}' and {list(other.input_shape)} in '{other.name}'")
    if other.num_classes != classes:
        differs.append(f"{classes} classes in '{name}' and {other.num_classes} in '{other.name}'")
    elif names and other.class_names and list(other.class_names) != names:
        i = next(i for i, (a, b) in enumerate(zip(names, other.class_names, strict=True)) if a != b)
        differs.append(f"class {i} is {names[i]!r} in '{name}' and {other.class_names[i]!r} in '{other.name}'")
    if differs:
        return {"validation": [f"The validation dataset does not match the training dataset: {'; '.join(differs)}."]}
    return {}


def validation_fields(validation) -> dict:
    """What a job stores of its spec's ``validation``."""
    if isinstance(validation, Dataset):
        return {"validation_fraction": 0.0, "validation_ref": validation, "validation_sha256": validation.sha256}
    return {"validation_fraction": validation}
