"""The delivery task: thin, on the control queue (``CELERY_TASK_ROUTES``), one attempt
per run; Celery retries it with exponential backoff and jitter while the receiver is
unreachable or answers 5xx/429, up to TENSORFLEET_WEBHOOK_MAX_ATTEMPTS attempts."""

from __future__ import annotations

from collections.abc import Callable

from celery import shared_task
from django.conf import settings
from django.db import transaction

from jobs.webhooks import services

DELIVER = "webhooks.deliver"
_TIMEOUT = settings.TENSORFLEET_WEBHOOK_TIMEOUT


class DeliveryRetry(Exception):
    """The attempt failed in a way another attempt may not (no answer, 5xx, 429)."""


@shared_task(
    name=DELIVER,
    bind=True,
    autoretry_for=(DeliveryRetry,),
    max_retries=max(settings.TENSORFLEET_WEBHOOK_MAX_ATTEMPTS - 1, 0),
    retry_backoff=settings.TENSORFLEET_WEBHOOK_RETRY_BACKOFF,
    retry_backoff_max=600,
    retry_jitter=True,
    # The POST bounds itself (connect, read, a deadline on the body); these are the backstop.
    soft_time_limit=int(3 * _TIMEOUT + 5),
    time_limit=int(3 * _TIMEOUT + 20),
)
def deliver(self, delivery_id: str) -> str | None:
    last = self.request.retries >= (self.max_retries or 0)
    outcome = services.delivery_attempt(delivery_id=delivery_id, last=last)
    if outcome is not None and outcome.retry:
        raise DeliveryRetry(f"delivery {delivery_id} attempt {self.request.retries + 1} failed; retrying")
    return outcome.status if outcome else None


def deliveries_send(deliveries) -> None:
    """Send each delivery once the caller's transaction commits."""
    for delivery in deliveries:
        transaction.on_commit(_sender(str(delivery.id)), robust=True)


def _sender(delivery_id: str) -> Callable[[], object]:
    return lambda: deliver.delay(delivery_id)
