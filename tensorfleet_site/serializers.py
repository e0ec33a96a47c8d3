"""Serializer pieces every app's API uses."""

from __future__ import annotations

from rest_framework import serializers


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
