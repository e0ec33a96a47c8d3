"""The model registry's pages: your registered models (latest version, aliases), and a
model's versions with their metrics and lineage (the job, its checkpoint, the dataset and
its version) and where each alias points. Reads through ``jobs.registry.selectors``;
downloads are the registry API's own links (session auth)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404

from jobs.registry import selectors
from jobs.registry.serializers import VersionSerializer
from tensorfleet_site.dashboard.views import render, visible_jobs


@login_required
def model_list(request):
    models = selectors.models_visible_to(request.user).prefetch_related("versions", "aliases__version", "tags")
    rows = [
        {
            "model": m,
            "versions": len(m.versions.all()),
            "latest": max((v.version for v in m.versions.all()), default=None),
            "aliases": sorted((a.name, a.version.version) for a in m.aliases.all()),
        }
        for m in models
    ]
    return render(request, "dashboard/models.html", {"rows": rows})


@login_required
def model_detail(request, name):
    model = selectors.model_of(request.user, name)
    if model is None:
        raise Http404("no such model")
    versions = list(selectors.versions_of(model).order_by("-version"))
    data = VersionSerializer(versions, many=True, context={"request": request}).data
    # Link the jobs the user can still see; a deleted job's lineage stays as recorded.
    seen = set(
        visible_jobs(request.user).filter(id__in=[v.job_id for v in versions if v.job_id]).values_list("id", flat=True)
    )
    rows = [{"v": v, "data": d, "job_visible": v.job_id in seen} for v, d in zip(versions, data, strict=True)]
    aliases = sorted((a.name, a.version.version) for a in model.aliases.select_related("version"))
    return render(request, "dashboard/model_detail.html", {"model": model, "rows": rows, "aliases": aliases})
