"""The submit form's fields, described by ``JobCreateSerializer`` itself, and the posted
text turned into the values the jobs API takes: tags comma-separated, and the fields that
take an object (model_args, early_stopping, init_from) as JSON. The spec's own validation
(``jobs.specs.job_spec_validate``) then says what is wrong, as the API does."""

from __future__ import annotations

import json

from rest_framework import serializers as drf

from jobs.projects import ProjectField, TagsField
from jobs.specs import JobCreateSerializer, spec_fields
from storage_app.builtin_datasets import BUILTIN_DATASETS

STRUCTURED = (drf.DictField, drf.JSONField, drf.Serializer)
EXAMPLES = {
    "model_args": '{"hidden": 128}',
    "early_stopping": '{"metric": "val_loss", "patience": 3}',
    "init_from": '{"job": "<id>", "checkpoint": "best"}',
}


def spec_values(post) -> tuple[dict, dict]:
    """The spec from the form's text (empty fields left out: the API's defaults), and the
    fields whose text is not what they take (not JSON), with the reason."""
    fields = JobCreateSerializer().fields
    known = spec_fields()
    values: dict = {}
    errors: dict = {}
    for name, raw in post.items():
        text = raw.strip()
        if name not in known or name not in fields or not text:
            continue
        field = fields[name]
        if isinstance(field, TagsField):
            values[name] = [t.strip() for t in text.split(",") if t.strip()]
        elif isinstance(field, STRUCTURED):
            try:
                values[name] = json.loads(text)
            except ValueError as exc:
                values[name] = text  # shown again as typed
                errors[name] = [f"Not valid JSON ({exc.msg} at character {exc.pos}); e.g. {EXAMPLES.get(name, '{}')}"]
        else:
            values[name] = text
    return values, errors


def _shown(field, value) -> str:
    """A value as the form's text shows it again (None: empty, the API's default)."""
    if value is None:
        return ""
    if isinstance(field, TagsField):
        return ", ".join(value) if isinstance(value, list) else str(value or "")
    if isinstance(field, STRUCTURED) and not isinstance(value, str):
        return json.dumps(value) if value not in (None, {}) else ""
    return value


def form_fields(values: dict, errors: dict, datasets, projects) -> list[dict]:
    fields = []
    for name, field in JobCreateSerializer().fields.items():
        default = field.default if field.default is not drf.empty else ""
        default = default() if callable(default) else default
        item = {
            "name": name,
            "label": name.replace("_", " "),
            "help": field.help_text or "",
            "required": field.required,
            "value": _shown(field, values.get(name, default)),
            "errors": errors.get(name, []),
            "choices": None,
            "type": "number" if isinstance(field, drf.IntegerField | drf.FloatField) else "text",
        }
        if name == "dataset":
            item["choices"] = [(n, f"{n} (built-in)") for n in sorted(BUILTIN_DATASETS)] + [
                (d.name, f"{d.name} (yours, {d.num_samples} samples)") for d in datasets
            ]
        elif isinstance(field, ProjectField):
            item["choices"] = [(str(p.id), p.name) for p in projects]
        elif isinstance(field, drf.ChoiceField):
            item["choices"] = [(key, key) for key in field.choices]
        elif isinstance(field, TagsField):
            item["help"] = f"comma-separated; {item['help']}"
        elif isinstance(field, STRUCTURED):
            item["help"] = f"JSON, e.g. {EXAMPLES.get(name, '{}')}; {item['help']}"
        if isinstance(field, drf.FloatField):
            item["step"] = "any"
        fields.append(item)
    return fields
