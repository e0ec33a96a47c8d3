"""Ids as people type them: a full UUID, or a unique prefix of 8 or more of its hex
characters (the 8 that the commands and the dashboard print).

One rule for the API (``IdPrefixLookupMixin`` on a viewset), the management commands
(``jobs.management.commands._common.get_job``) and ``manage.py watch``. A prefix is a
range of UUIDs, ``prefix000…`` to ``prefixfff…``, so the lookup is a range scan on the
primary key's index on PostgreSQL (uuid compares bytewise) and on SQLite (hex text).
"""

from __future__ import annotations

import uuid
from typing import TypeVar

from django.db.models import Model, QuerySet
from django.http import Http404
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError
from rest_framework.schemas.inspectors import ViewInspector

MIN_PREFIX = 8
MAX_LISTED = 10
HEX = frozenset("0123456789abcdef")

M = TypeVar("M", bound=Model)


class IdNotFound(LookupError):
    """Nothing matches, or the value is no id nor prefix."""


class IdAmbiguous(LookupError):
    """The prefix matches more than one; ``matches`` holds their ids (up to ``MAX_LISTED``)."""

    def __init__(self, message: str, matches: list[str]):
        super().__init__(message)
        self.matches = matches


def prefix_bounds(value: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The first and last UUID starting with ``value`` (hyphens and case ignored), or
    None when it is not 8 to 32 hex characters."""
    digits = str(value).strip().lower().replace("-", "")
    if not MIN_PREFIX <= len(digits) <= 32 or not set(digits) <= HEX:
        return None
    return uuid.UUID(digits.ljust(32, "0")), uuid.UUID(digits.ljust(32, "f"))


def by_id_or_prefix(queryset: QuerySet[M], value, *, noun: str = "job") -> M:
    """The one row of ``queryset`` whose id is ``value`` or starts with it."""
    bounds = prefix_bounds(str(value))
    if bounds is None:
        raise IdNotFound(
            f"no {noun} with id {str(value)!r} (give its id, or a unique prefix of {MIN_PREFIX} or more of its "
            "hex characters)"
        )
    matches = list(queryset.filter(pk__range=bounds).order_by("pk")[: MAX_LISTED + 1])
    if not matches:
        exact = bounds[0] == bounds[1]
        raise IdNotFound(f"no {noun} with id {value!s}" if exact else f"no {noun} with an id starting {value!s}")
    if len(matches) > 1:
        ids = [str(row.pk) for row in matches[:MAX_LISTED]]
        more = " and more" if len(matches) > MAX_LISTED else ""
        raise IdAmbiguous(
            f"{value!s} starts the id of more than one {noun}: {', '.join(ids)}{more}; give more characters",
            ids,
        )
    return matches[0]


def short_id(queryset: QuerySet, pk) -> str:
    """The shortest prefix, 8 characters or more, naming ``pk`` alone in ``queryset``."""
    text = str(pk)
    for length in (8, 13, 18, 23):  # up to each hyphen of the canonical form
        bounds = prefix_bounds(text[:length])
        if bounds is not None and queryset.filter(pk__range=bounds).count() <= 1:
            return text[:length]
    return text


class IdPrefixSchema(AutoSchema):
    """The ``{id}`` path parameter is a string (an id or a prefix), not a ``uuid``."""

    def get_override_parameters(self):
        parameters = list(super().get_override_parameters())
        if "{id}" in self.path:
            parameters.append(
                OpenApiParameter(
                    "id",
                    OpenApiTypes.STR,
                    OpenApiParameter.PATH,
                    description=f"the id, or a unique prefix of {MIN_PREFIX} or more of its hex characters "
                    "(an ambiguous prefix is a 400 listing the matches)",
                    pattern=r"^[0-9a-fA-F-]{8,36}$",
                )
            )
        return parameters


class IdPrefixLookupMixin:
    """A viewset's detail routes find the object by id or by a unique id prefix, among
    the rows of ``get_queryset()`` only (a user's prefix never matches another's rows)."""

    schema: ViewInspector | None = IdPrefixSchema()
    id_noun = "job"

    def get_object(self):
        queryset = self.filter_queryset(self.get_queryset())
        value = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        try:
            obj = by_id_or_prefix(queryset, value, noun=self.id_noun)
        except IdNotFound as exc:
            raise Http404(_sentence(exc)) from None
        except IdAmbiguous as exc:
            raise ValidationError({"id": [_sentence(exc)], "matches": exc.matches}) from None
        self.check_object_permissions(self.request, obj)
        return obj


def _sentence(exc: Exception) -> str:
    """The API's messages are sentences, as DRF's are; the commands' are lines."""
    text = str(exc)
    return text[:1].upper() + text[1:] + "."
