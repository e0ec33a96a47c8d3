"""Reads of the webhooks: an owner sees their own endpoints and their deliveries only."""

from __future__ import annotations

from django.db.models import QuerySet

from jobs.webhooks.models import WebhookDelivery, WebhookEndpoint


def endpoints_visible_to(user) -> QuerySet[WebhookEndpoint]:
    if not user.is_authenticated:
        return WebhookEndpoint.objects.none()
    return WebhookEndpoint.objects.filter(owner=user)


def deliveries_of(endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """Newest first, each with its attempts."""
    return endpoint.deliveries.prefetch_related("attempt_log").order_by("-created_at")


def delivery_of(endpoint: WebhookEndpoint, delivery_id) -> WebhookDelivery | None:
    return deliveries_of(endpoint).filter(id=delivery_id).first()
