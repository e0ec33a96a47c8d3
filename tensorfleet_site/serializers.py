"""Serializer pieces every app's API uses."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail

MAX_CHOICES_LISTED = 30


def suggest(word: str, candidates: Iterable[str]) -> str | None:
    """The name a typo most likely meant, or None: a snake_case name whose initials the
    word is ("lr" -> learning_rate, "bs" -> batch_size), else difflib's closest match
    (cutoff 0.6: "epoch" -> epochs, "workers" -> num_workers), else the one name that
    contains the word."""
    names = [str(c) for c in candidates]
    typed = str(word).strip().lower()
    if not typed:
        return None
    by_initials = [n for n in names if "_" in n and "".join(p[0] for p in n.lower().split("_") if p) == typed]
    if len(by_initials) == 1:
        return by_initials[0]
    lowered = {n.lower(): n for n in names}
    close = difflib.get_close_matches(typed, list(lowered), n=1, cutoff=0.6)
    if close:
        return lowered[close[0]]
    containing = [n for n in names if len(typed) >= 3 and typed in n.lower()]
    return containing[0] if len(containing) == 1 else None


def unknown_field_message(name: str, known: Iterable[str]) -> str:
    """ "Unknown field." with the likely meant name when there is one."""
    hint = suggest(name, known)
    return f"Unknown field '{name}'; did you mean '{hint}'?" if hint else "Unknown field."


def invalid_choice_message(value, choices: Iterable) -> str:
    """DRF's "is not a valid choice", with a suggestion and the valid choices listed."""
    valid = [str(c) for c in choices]
    hint = suggest(str(value), valid)
    listed = ", ".join(valid[:MAX_CHOICES_LISTED]) + (", …" if len(valid) > MAX_CHOICES_LISTED else "")
    message = f'"{value}" is not a valid choice'
    message += f"; did you mean '{hint}'?" if hint else "."
    return f"{message} Valid choices: {listed}."


class StrictSerializer(serializers.Serializer):
    """Rejects fields it does not know, with one message per unknown field; a typo in a
    field's name or in a choice's value gets a suggestion."""

    aliases: dict[str, str] = {}
    unknown_field_message = staticmethod(unknown_field_message)  # for a subclass's own checks (a sweep's space)

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
            known = [*self.fields, *self.aliases]
            raise serializers.ValidationError({field: [unknown_field_message(field, known)] for field in unknown})
        try:
            return super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if isinstance(exc.detail, dict):
                self._explain_choices(exc.detail, data)
            raise

    def _explain_choices(self, errors: dict, data) -> None:
        """Rewrite DRF's bare "not a valid choice" of a single-value ChoiceField in place."""
        for name, messages in errors.items():
            field = self.fields.get(name)
            if not isinstance(field, serializers.ChoiceField) or isinstance(field, serializers.MultipleChoiceField):
                continue
            if not isinstance(messages, list):
                continue
            errors[name] = [
                ErrorDetail(invalid_choice_message(data.get(name), field.choices), code="invalid_choice")
                if getattr(message, "code", None) == "invalid_choice"
                else message
                for message in messages
            ]
