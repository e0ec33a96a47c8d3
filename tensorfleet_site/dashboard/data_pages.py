"""The datasets page: your datasets by name with their versions, an upload form that posts
to the datasets API itself (XHR with the session, for a progress bar; the API's checks and
messages), and delete behind a confirmation, through ``storage_app.datasets`` with the
API's own refusal when a queued or running job uses the dataset."""

from __future__ import annotations

from itertools import groupby

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from storage_app import datasets
from storage_app.formats import FORMATS
from storage_app.models import Dataset
from tensorfleet_site.dashboard.views import render


def owned_datasets(user):
    """The datasets API's rule: a user's own uploads."""
    return Dataset.objects.filter(owner=user)


@login_required
def dataset_list(request):
    rows = owned_datasets(request.user).order_by("name", "-version")
    groups = [{"name": name, "versions": list(versions)} for name, versions in groupby(rows, key=lambda d: d.name)]
    context = {
        "groups": groups,
        "formats": FORMATS,
        "api": reverse("dataset-list"),
        "max_bytes": settings.TENSORFLEET_MAX_DATASET_BYTES,
        "uploaded": request.GET.get("uploaded", ""),
    }
    return render(request, "dashboard/datasets.html", context)


@login_required
@require_POST
def dataset_delete(request, dataset_id):
    dataset = get_object_or_404(owned_datasets(request.user), id=dataset_id)
    label = f"{dataset.name}@{dataset.version}"
    try:
        datasets.dataset_delete(dataset=dataset)
        messages.success(request, f"Dataset {label} deleted.")
    except datasets.DatasetInUse as exc:
        messages.error(request, str(exc))
    return redirect("dashboard:datasets")
