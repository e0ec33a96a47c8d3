"""What an owner keeps in storage, for the stored-bytes quota (tensorfleet_site/quotas)."""

from __future__ import annotations

from django.db.models import Sum

from storage_app.models import Checkpoint, Dataset


def stored_bytes(owner) -> int:
    """Bytes of the owner's datasets and of their jobs' checkpoints, added up (a dataset
    uploaded twice under two names counts twice: each record can be kept or deleted)."""
    datasets = Dataset.objects.filter(owner=owner).aggregate(n=Sum("size"))["n"] or 0
    checkpoints = Checkpoint.objects.filter(job__owner=owner).aggregate(n=Sum("size"))["n"] or 0
    return int(datasets) + int(checkpoints)
