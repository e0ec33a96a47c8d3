"""Writes of the webhooks: endpoints, deliveries made from events, attempts, redeliveries.

A delivery is at least once: a receiver that must act once dedupes on the
``X-TensorFleet-Delivery`` header (a redelivery has an id of its own, and says which
delivery it repeats in the body's ``redelivery_of``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from jobs.webhooks import addresses, sending
from jobs.webhooks.models import DeliveryAttempt, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)


def endpoint_create(*, owner, url: str, events: list[str], secret: str, active=True, description="") -> WebhookEndpoint:
    """The caller has checked the URL (``addresses.url_check``) and the events."""
    return WebhookEndpoint.objects.create(
        owner=owner, url=url, events=events, secret=secret, active=active, description=description
    )


def endpoint_update(*, endpoint: WebhookEndpoint, **fields) -> WebhookEndpoint:
    for name, value in fields.items():
        setattr(endpoint, name, value)
    endpoint.save(update_fields=[*fields, "updated_at"])
    return endpoint


# Events -> deliveries ---------------------------------------------------------------------


def event_emit(*, owner_id, event: str, data: dict) -> list[WebhookDelivery]:
    """A pending delivery of ``event`` to each of the owner's active endpoints that wants
    it (the caller sends them: ``tasks.deliveries_send``)."""
    endpoints = [e for e in WebhookEndpoint.objects.filter(owner_id=owner_id, active=True) if e.wants(event)]
    return [WebhookDelivery.objects.create(endpoint=e, event=event, payload=data) for e in endpoints]


def delivery_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """The same event and data again, as a new pending delivery (with an id of its own)."""
    return WebhookDelivery.objects.create(
        endpoint=delivery.endpoint, event=delivery.event, payload=delivery.payload, redelivery_of=delivery
    )


def delivery_body(delivery: WebhookDelivery) -> bytes:
    """The bytes every attempt of the delivery sends (and signs)."""
    document = {
        "event": delivery.event,
        "delivery": str(delivery.id),
        "created_at": delivery.created_at.isoformat(),
        "redelivery_of": str(delivery.redelivery_of_id) if delivery.redelivery_of_id else None,
        "data": delivery.payload,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


# Attempts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What an attempt left: ``retry`` when another attempt should follow."""

    status: str
    retry: bool


def _post(delivery: WebhookDelivery) -> tuple[sending.Answer, str | None]:
    """One POST, the URL checked again first on what its name resolves to now."""
    endpoint = delivery.endpoint
    body = delivery_body(delivery)
    try:
        target = addresses.url_parse(endpoint.url)
        address = str(addresses.addresses_check(target)[0])
    except addresses.UrlRefused as exc:
        return sending.Answer(None, "", f"refused: {exc}"[:500], 0.0), None
    headers = {
        "X-TensorFleet-Event": delivery.event,
        "X-TensorFleet-Delivery": str(delivery.id),
        "X-TensorFleet-Signature": sending.signature(endpoint.secret, body),
    }
    timeout = settings.TENSORFLEET_WEBHOOK_TIMEOUT
    return sending.post(target=target, address=address, body=body, headers=headers, timeout=timeout), address


def delivery_attempt(*, delivery_id, last: bool) -> Outcome | None:
    """POST the delivery once and log the attempt; ``last``: no retry follows whatever
    happens. None when the delivery is gone or already ended (a duplicate message)."""
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(id=delivery_id).first()
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
        return None
    started = timezone.now()
    answer, address = _post(delivery)
    refused = answer.error.startswith("refused:")
    retry = not answer.ok and answer.retryable and not refused and not last
    status = WebhookDelivery.Status.SUCCEEDED if answer.ok else WebhookDelivery.Status.FAILED
    with transaction.atomic():
        WebhookDelivery.objects.filter(id=delivery.id).update(attempts=F("attempts") + 1)
        number = WebhookDelivery.objects.values_list("attempts", flat=True).get(id=delivery.id)
        DeliveryAttempt.objects.create(
            delivery=delivery,
            number=number,
            started_at=started,
            duration_ms=round(answer.duration_ms, 1),
            address=address,
            status_code=answer.status,
            error=answer.error,
            response_excerpt=answer.excerpt,
            will_retry=retry,
        )
        if not retry:
            WebhookDelivery.objects.filter(id=delivery.id).update(status=status, finished_at=timezone.now())
    logger.info("webhook %s %s attempt %s: %s", delivery.event, delivery.id, number, answer.status or answer.error)
    return Outcome(status=WebhookDelivery.Status.PENDING if retry else status, retry=retry)
