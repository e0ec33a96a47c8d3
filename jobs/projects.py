"""Projects, tags and notes as a spec takes them: the fields of the jobs' and sweeps'
specs and of their PATCH, one definition for both (jobs/specs.py, jobs/sweep_serializers.py,
jobs/project_serializers.py). Reads only; the writes are jobs/services/projects.py.
"""

from __future__ import annotations

import re
import uuid

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from jobs import selectors
from jobs.models import Project

MAX_TAGS = 20
MAX_NOTE = 10000
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/+=-]{0,49}$")
TAG_RULE = "1 to 50 letters, digits or _ . : / + = -, starting with a letter or digit"


def _owner(context: dict):
    owner = context.get("owner")
    return owner() if callable(owner) else owner


def project_for_writer(owner, value) -> Project:
    """The project a submission or an edit names: by id, or by name among the projects
    the user may write to. ValueError says why none fits."""
    writable = selectors.projects_writable_by(owner) if owner is not None else Project.objects.none()
    text = str(value).strip()
    try:
        found = writable.filter(id=uuid.UUID(text)).first()
    except ValueError:
        named = list(writable.filter(name=text).select_related("owner")[:2])
        if len(named) > 1:
            mine = [p for p in named if p.owner_id == owner.pk]
            if len(mine) == 1:
                return mine[0]
            raise ValueError(f"More than one project you may write to is named {text!r}; give its id.") from None
        found = named[0] if named else None
    if found is not None:
        return found
    visible = selectors.projects_visible_to(owner) if owner is not None else Project.objects.none()
    try:
        read_only = visible.filter(id=uuid.UUID(text)).exists()
    except ValueError:
        read_only = visible.filter(name=text).exists()
    if read_only:
        raise ValueError(f"You have read-only access to project {text!r}: its owner can make you a writer.")
    raise ValueError(f"Unknown project {text!r}: give the id or name of a project you own or may write to.")


@extend_schema_field({"type": "string", "nullable": True, "description": "a project's id or name"})
class ProjectField(serializers.Field):
    """A project the signed-in user owns or is a ``write`` member of, by id or name; the
    answer shows its id."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "a project you own or may write to, by id or name (null: none)")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str) or not 0 < len(data.strip()) <= 100:
            raise serializers.ValidationError("A project's id or name (1 to 100 characters), or null.")
        try:
            return project_for_writer(_owner(self.context), data)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value):
        return str(value.pk) if value is not None else None


def tags_clean(values) -> list[str]:
    """Tag names as given, each once, in the order given. ValueError names the bad one."""
    if not isinstance(values, list):
        raise ValueError('A list of tags, e.g. ["baseline", "lr-search"].')
    if len(values) > MAX_TAGS:
        raise ValueError(f"{len(values)} tags; at most {MAX_TAGS}.")
    cleaned: list[str] = []
    for value in values:
        if not isinstance(value, str) or not TAG_RE.match(value.strip()):
            raise ValueError(f"{str(value)[:60]!r} is not a tag: {TAG_RULE}.")
        if value.strip() not in cleaned:
            cleaned.append(value.strip())
    return cleaned


@extend_schema_field({"type": "array", "items": {"type": "string", "pattern": TAG_RE.pattern}, "maxItems": MAX_TAGS})
class TagsField(serializers.Field):
    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", f"labels to find it by: up to {MAX_TAGS}, each {TAG_RULE}")
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        try:
            return tags_clean(data)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value):
        if hasattr(value, "all"):  # the related manager of a row
            return sorted(tag.name for tag in value.all())
        return list(value)


def note_field() -> serializers.CharField:
    return serializers.CharField(
        max_length=MAX_NOTE, required=False, allow_blank=True, default="", help_text="free text"
    )
