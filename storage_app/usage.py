"""What an owner keeps in storage, for the stored-bytes quota (tensorfleet_site/quotas)."""

from __future__ import annotations

from django.db.models import Sum

from storage_app.models import Checkpoint, Dataset, Weights


def stored_bytes(owner) -> int:
    """Bytes of the owner's datasets, uploaded weights and jobs' checkpoints, added up (a
    file uploaded twice under two names counts twice: each record can be kept or deleted)."""
    datasets = Dataset.objects.filter(owner=owner).aggregate(n=Sum("size"))["n"] or 0
    weights = Weights.objects.filter(owner=owner).aggregate(n=Sum("size"))["n"] or 0
    checkpoints = Checkpoint.objects.filter(job__owner=owner).aggregate(n=Sum("size"))["n"] or 0
    return int(datasets) + int(weights) + int(checkpoints)
