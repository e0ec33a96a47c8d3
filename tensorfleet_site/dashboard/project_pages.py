"""Projects and tags: the projects you own or are a member of (your role in each), a
project's jobs, sweeps and members, and the tags on what you see with their counts; each
links to the jobs list filtered by it. Visibility is ``jobs.selectors``'s."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404

from jobs import selectors
from jobs.models import Tag
from tensorfleet_site.dashboard.views import render, visible_jobs

PROJECT_JOBS_SHOWN = 50


@login_required
def project_list(request):
    user = request.user
    jobs = visible_jobs(user).values("id")
    sweeps = selectors.sweeps_visible_to(user).values("id")
    projects = (
        selectors.projects_visible_to(user)
        .select_related("owner")
        .annotate(
            jobs_count=Count("jobs", filter=Q(jobs__in=jobs), distinct=True),
            sweeps_count=Count("sweeps", filter=Q(sweeps__in=sweeps), distinct=True),
        )
        .order_by("name")
    )
    rows = [{"project": p, "role": selectors.project_role(user, p)} for p in projects]
    # The tags API's counts (jobs/project_apis.py TagViewSet), over what this user sees.
    tags = (
        Tag.objects.annotate(
            jobs_count=Count("jobs", filter=Q(jobs__in=jobs), distinct=True),
            sweeps_count=Count("sweeps", filter=Q(sweeps__in=sweeps), distinct=True),
        )
        .filter(Q(jobs_count__gt=0) | Q(sweeps_count__gt=0))
        .order_by("name")
    )
    return render(request, "dashboard/projects.html", {"rows": rows, "tags": tags})


@login_required
def project_detail(request, project_id):
    project = get_object_or_404(selectors.projects_visible_to(request.user).select_related("owner"), id=project_id)
    jobs = visible_jobs(request.user).filter(project=project).select_related("owner").prefetch_related("tags")
    context = {
        "project": project,
        "role": selectors.project_role(request.user, project),
        "jobs": jobs[:PROJECT_JOBS_SHOWN],
        "jobs_count": jobs.count(),
        "sweeps": selectors.sweeps_visible_to(request.user).filter(project=project),
        "members": project.members.select_related("user"),
    }
    return render(request, "dashboard/project_detail.html", context)
