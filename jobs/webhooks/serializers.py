"""Input and output shapes of the webhooks API. The secret is write-only."""

from __future__ import annotations

from rest_framework import serializers

from jobs.webhooks.addresses import UrlRefused, url_check
from jobs.webhooks.models import ALL_EVENTS, EVENTS, DeliveryAttempt, WebhookDelivery, WebhookEndpoint
from tensorfleet_site.serializers import StrictSerializer


class EndpointWriteSerializer(StrictSerializer):
    url = serializers.CharField(max_length=2000, help_text="http(s) URL on a public address")
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=(*EVENTS, ALL_EVENTS)),
        allow_empty=False,
        max_length=len(EVENTS) + 1,
        help_text=f"any of {', '.join(EVENTS)}; {ALL_EVENTS!r} for all",
    )
    secret = serializers.CharField(
        min_length=16,
        max_length=256,
        write_only=True,
        trim_whitespace=False,
        help_text="signs each delivery: X-TensorFleet-Signature is sha256=HMAC-SHA256(secret, body); never shown back",
    )
    active = serializers.BooleanField(default=True)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    def validate_url(self, value: str) -> str:
        try:
            url_check(value.strip())
        except UrlRefused as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value.strip()

    def validate_events(self, value: list[str]) -> list[str]:
        return sorted(set(value))


class EndpointUpdateSerializer(EndpointWriteSerializer):
    """PATCH: any of the fields, each checked as on creation."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, partial=True, **kwargs)


class EndpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "events", "active", "description", "created_at", "updated_at"]
        read_only_fields = fields


class AttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = [
            "number",
            "started_at",
            "duration_ms",
            "address",
            "status_code",
            "error",
            "response_excerpt",
            "will_retry",
        ]
        read_only_fields = fields


class DeliverySerializer(serializers.ModelSerializer):
    attempts = AttemptSerializer(source="attempt_log", many=True, read_only=True)
    attempt_count = serializers.IntegerField(source="attempts", read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event",
            "status",
            "attempt_count",
            "attempts",
            "redelivery_of",
            "payload",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields
