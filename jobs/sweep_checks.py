"""The sweep validation's pieces (jobs/sweep_serializers.py): the space parsed within the
limits, one value checked by its job field's own rules, each searched value once on its
own and once against the rules across fields, and the messages they give."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.fields import get_error_detail

from jobs.search_space import CONTINUOUS, SpaceError, parse_space, value_key

UNSEEN = object()


def space_parsed(space: dict) -> dict:
    try:
        return parse_space(
            space,
            max_params=settings.TENSORFLEET_MAX_SWEEP_PARAMS,
            max_values=settings.TENSORFLEET_MAX_SWEEP_CHOICES,
        )
    except SpaceError as exc:
        raise serializers.ValidationError(exc.errors) from None


def field_value(job, field: str, value):
    """``value`` checked by the job field's own rules and its ``validate_<field>`` method,
    as DRF's ``to_internal_value`` does for one field; ValidationError keyed by the field."""
    try:
        value = job.fields[field].run_validation(value)
        method = getattr(job, f"validate_{field}", None)
        return method(value) if method else value
    except serializers.ValidationError as exc:
        raise serializers.ValidationError({field: exc.detail}) from None
    except DjangoValidationError as exc:
        raise serializers.ValidationError({field: get_error_detail(exc)}) from None


def error_messages(exc: serializers.ValidationError) -> dict[str, list[str]]:
    """A ValidationError's messages by field (a bare message under non_field_errors)."""
    detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
    return {
        field: [str(m) for m in (messages if isinstance(messages, list) else [messages])]
        for field, messages in detail.items()
    }


def value_shown(param, i: int, value) -> str:
    if param.kind in CONTINUOUS:
        return f"{'low' if i == 0 else 'high'} {value!r}"
    return repr(value)


def dataset_ref(resolved, given):
    """A user's dataset by its id, so trials find it without importing it again; a built-in
    (or a path still to import) as given."""
    ref = getattr(resolved, "id", None)
    return str(ref) if ref is not None else given


def values_check(job, params: dict, note, space_errors: dict) -> dict[str, dict]:
    """Each distinct value of each searched field, once, against its job field's rules."""
    values: dict[str, dict] = {}
    for field, param in params.items():
        mine = values[field] = {}
        for i, value in enumerate(param.extremes()):
            key = value_key(value)
            if key in mine:
                continue  # validated once, however often it is listed
            try:
                mine[key] = field_value(job, field, value)
            except serializers.ValidationError as exc:
                for m in error_messages(exc).get(field, []):
                    note(space_errors, field, f"{value_shown(param, i, value)}: {m}")
    if space_errors:
        raise serializers.ValidationError({"space": space_errors})
    return values


def combinations_check(job, params: dict, reference: dict, values: dict, note, space_errors: dict) -> None:
    """Each searched value against the job's rules across fields, the others at their first value."""
    for field, param in params.items():
        for i, value in enumerate(param.extremes()):
            try:
                job.validate({**reference, field: values[field][value_key(value)]})
            except serializers.ValidationError as exc:
                for bad, messages in error_messages(exc).items():
                    if bad != field and bad in params:
                        continue  # another searched field at its first value: its own probes say it
                    shown = value_shown(param, i, value)
                    for m in messages:
                        note(space_errors, field, f"{shown}: {m}" if bad == field else f"{shown}: {bad}: {m}")
    if space_errors:
        raise serializers.ValidationError({"space": space_errors})
