"""The sweeps pages: the list, and a sweep with its trials (their parameters and results),
the best trial and a parallel-coordinates plot (parallel.py). Reads through
``jobs.selectors`` (who sees which sweep, its trials in order); cancel through
``jobs.services.sweeps`` with the API's own rule and message."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from jobs import selectors
from jobs.models import Sweep
from jobs.services import sweeps
from jobs.sweep_serializers import SweepSerializer
from tensorfleet_site.dashboard import parallel
from tensorfleet_site.dashboard.views import render

SWEEPS_PER_PAGE = 50


def _sweep_for(request, sweep_id) -> Sweep:
    visible = selectors.sweeps_visible_to(request.user).select_related("owner", "best_trial", "project")
    return get_object_or_404(visible.prefetch_related("tags"), id=sweep_id)


@login_required
def sweep_list(request):
    found = selectors.sweeps_visible_to(request.user).select_related("owner", "best_trial", "project")
    page = Paginator(found.prefetch_related("tags"), SWEEPS_PER_PAGE).get_page(request.GET.get("page"))
    counts = SweepSerializer(page.object_list, many=True, context={"request": request}).data
    rows = [{"sweep": s, "counts": c["counts"]} for s, c in zip(page.object_list, counts, strict=True)]
    return render(request, "dashboard/sweeps.html", {"page": page, "rows": rows})


def _trial_rows(sweep: Sweep) -> list[dict]:
    rows = []
    for job in selectors.trials_of(sweep):
        rows.append(
            {
                "job": job,
                "params": sweeps.trial_params(job, sweep),
                "metric": getattr(job, sweep.metric),
                "best": job.id == sweep.best_trial_id,
            }
        )
    return rows


@login_required
def sweep_detail(request, sweep_id):
    sweep = _sweep_for(request, sweep_id)
    trials = _trial_rows(sweep)
    chart = parallel.plot(
        sweep.space,
        [
            parallel.Trial(
                number=t["job"].trial_number or 0,
                params=t["params"],
                # A running trial's metric is that of its last epoch so far: shown, not yet final.
                metric=t["metric"],
                best=t["best"],
                href=reverse("dashboard:job", args=[t["job"].id]),
            )
            for t in trials
        ],
        metric=sweep.metric,
        mode=sweep.mode,
    )
    summary = SweepSerializer(sweep, context={"request": request}).data
    context = {
        "sweep": sweep,
        "trials": trials,
        "fields": sorted(sweep.space),
        "chart": chart,
        "counts": summary["counts"],
        "best": summary["best"],
        "may_change": selectors.sweep_may_change(request.user, sweep),
    }
    return render(request, "dashboard/sweep_detail.html", context)


@login_required
@require_POST
def sweep_cancel(request, sweep_id):
    sweep = _sweep_for(request, sweep_id)
    if not selectors.sweep_may_change(request.user, sweep):
        raise PermissionDenied("You have read-only access to this sweep's project.")
    try:
        sweeps.sweep_cancel(sweep=sweep)
        messages.success(request, "Sweep cancelled: no new trial starts, its queued and running trials stop.")
    except sweeps.SweepNotActive as exc:
        messages.error(request, str(exc))
    return redirect("dashboard:sweep", sweep_id=sweep.id)
