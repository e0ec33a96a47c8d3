"""What the workers can build, as they publish it: a worker replaces its offers when it
starts (``workers.publishing``, on Celery's ``worker_ready``) and withdraws them when it
stops. The API and the spec validator read these rows (``jobs.published_models``)
instead of importing torch or the plugins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import transaction

from jobs.models import ModelOffer


def offers_publish(*, worker: str, queues: Iterable[str], offers: Sequence[dict]) -> int:
    """Replace ``worker``'s offers by ``offers`` on each of ``queues``; returns the rows
    written. Each offer is ``{name, arguments, input_kind, description, source}``
    (``workers.plugins.Entry.offer``). A worker that restarts under the same name with
    other plugins installed says so here, in one transaction."""
    rows = [
        ModelOffer(
            worker=worker,
            queue=queue,
            name=offer["name"],
            arguments=offer.get("arguments") or {},
            input_kind=offer.get("input_kind") or ModelOffer.Input.ANY,
            description=offer.get("description", ""),
            source=offer.get("source", "")[:300],
        )
        for queue in sorted(set(queues))
        for offer in offers
    ]
    with transaction.atomic():
        ModelOffer.objects.filter(worker=worker).delete()
        ModelOffer.objects.bulk_create(rows)
    return len(rows)


def offers_withdraw(*, worker: str) -> int:
    """Remove ``worker``'s offers (it is shutting down); returns how many there were."""
    deleted, _ = ModelOffer.objects.filter(worker=worker).delete()
    return deleted
