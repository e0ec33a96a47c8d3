"""The web dashboard (/dashboard/): server-rendered pages behind login, over the same
services, selectors and serializers as the API. The live parts poll JSON: the jobs API
(/api/v1/jobs/<id>, /metrics, /tasks) and ``overview_json`` below (session auth).

Owners see their own jobs; staff see every job.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import F
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.shortcuts import render as django_render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs import queue_consumers, selectors
from jobs.filters import JOB_ORDERING, JobFilter
from jobs.models import Job, Status, Tag
from jobs.serializers import (
    CheckpointSerializer,
    EpochMetricSerializer,
    JobSerializer,
    TaskSerializer,
    class_labels,
)
from jobs.services import lifecycle
from jobs.specs import SpecInvalid, job_spec_validate, spec_fields
from monitoring_app.overview import overview_for
from storage_app.models import Dataset
from tensorfleet_site.dashboard import formatting
from tensorfleet_site.dashboard.submit_form import form_fields, spec_values
from tensorfleet_site.dashboard.timing import epoch_times
from tensorfleet_site.quotas.limits import QuotaExceeded

RECENT_JOBS = 10
JOBS_PER_PAGE = 50
MAX_COMPARED = 8
MAX_CONFUSION_SHOWN = 20  # classes; a bigger matrix is in the API (/metrics) only
MAX_CLASSES_SHOWN = 100  # rows of the per-class accuracy table
PER_CLASS_FIELDS = ("per_class_accuracy", "confusion_matrix")  # shown in their own tables, not in the chart data


def render(request, template: str, context: dict, status: int = 200):
    """Every page's navigation shows Flower and Grafana links, only where they are set."""
    links = {"flower_url": settings.FLOWER_URL, "grafana_url": settings.GRAFANA_URL}
    return django_render(request, template, {**links, **context}, status=status)


def visible_jobs(user):
    return selectors.jobs_overseen_by(user)


def _job_for(request, job_id) -> Job:
    return get_object_or_404(visible_jobs(request.user).select_related("owner"), id=job_id)


def _job_to_change(request, job_id) -> Job:
    """A job the user may cancel or resume (``selectors.job_may_change``): a reader of its project gets a 403."""
    job = _job_for(request, job_id)
    if not selectors.job_may_change(request.user, job):
        raise PermissionDenied("You have read-only access to this job's project.")
    return job


def overview_numbers(user) -> dict:
    """The four cards: running, queued, succeeded in the last 24 h, workers online."""
    overview = overview_for(user=user)
    since = timezone.now() - timedelta(hours=24)
    succeeded = visible_jobs(user).filter(status=Status.SUCCEEDED, finished_at__gte=since).count()
    return {
        "running": overview.jobs_by_status.get(Status.RUNNING, 0),
        "queued": overview.jobs_by_status.get(Status.QUEUED, 0),
        "succeeded_24h": succeeded,
        "workers_online": overview.workers_online,
    }


def _recent(request):
    return visible_jobs(request.user).select_related("owner")[:RECENT_JOBS]


@login_required
def overview(request):
    context = {"cards": overview_numbers(request.user), "jobs": _recent(request)}
    return render(request, "dashboard/overview.html", context)


class OverviewJsonView(APIView):
    """The dashboard overview's live numbers and recent jobs (GET /api/v1/dashboard/overview)."""

    def get(self, request):
        jobs = JobSerializer(_recent(request), many=True, context={"request": request}).data
        return Response({"cards": overview_numbers(request.user), "jobs": jobs})


def _job_filters(request) -> tuple[JobFilter, dict, dict]:
    """The jobs API's own filters (jobs/filters.py) over the jobs the user oversees, and
    the choices of the filter form: visible projects and tags."""
    values = {k: v.strip() for k, v in request.GET.items() if k in JobFilter.base_filters and v.strip()}
    jobs = visible_jobs(request.user).select_related("owner", "project").prefetch_related("tags")
    choices = {
        "projects": selectors.projects_visible_to(request.user).order_by("name"),
        "tags": Tag.objects.filter(jobs__in=visible_jobs(request.user).values("id")).distinct().order_by("name"),
    }
    return JobFilter(data=values, queryset=jobs), values, choices


@login_required
def job_list(request):
    found, values, choices = _job_filters(request)
    errors: dict = {}
    ordering = request.GET.get("ordering", "")
    if ordering.lstrip("-") not in JOB_ORDERING:
        ordering = ""
    jobs = found.queryset.none()
    try:
        if found.is_valid():
            jobs = found.qs
            if ordering:
                field = ordering.lstrip("-")
                key = F(field).desc(nulls_last=True) if ordering.startswith("-") else F(field).asc(nulls_last=True)
                jobs = jobs.order_by(key, "-created_at")
        else:
            errors = {field: [str(m) for m in messages_] for field, messages_ in found.errors.items()}
    except ValidationError as exc:  # a filter method's own refusal (a malformed tag)
        errors = {k: [str(m) for m in v] for k, v in exc.detail.items()} if isinstance(exc.detail, dict) else {}
        jobs = found.queryset.none()
    page = Paginator(jobs, JOBS_PER_PAGE).get_page(request.GET.get("page"))
    query = urlencode({**values, **({"ordering": ordering} if ordering else {})})
    context = {
        "page": page,
        "jobs": page.object_list,
        "filters": values,
        "errors": errors,
        "ordering": ordering,
        "orderings": [(f"-{f}", f"{f.replace('_', ' ')}, highest first") for f in JOB_ORDERING]
        + [(f, f"{f.replace('_', ' ')}, lowest first") for f in JOB_ORDERING],
        "statuses": Status.values,
        "query": query,
        "max_compared": MAX_COMPARED,
        **choices,
    }
    return render(request, "dashboard/jobs.html", context, status=400 if errors else 200)


def _task_grid(job: Job) -> list[dict]:
    """Rows of the task grid: one per round of an epoch (one per epoch without rounds), one cell per shard."""
    rows: dict[tuple[int, int], list] = {}
    for task in TaskSerializer(job.tasks.all(), many=True).data:
        rows.setdefault((task["epoch"], task["round"]), []).append(task)
    return [
        {
            "epoch": epoch,
            "round": round,
            "label": f"epoch {epoch}" + (f" · round {round}" if job.sync_every_steps else ""),
            "tasks": tasks,
        }
        for (epoch, round), tasks in sorted(rows.items())
    ]


def _class_metrics(job: Job) -> dict | None:
    """Per-class accuracy and the confusion matrix of the job's last evaluated epoch, as
    table rows (classes by name when the dataset has names); None before any evaluation."""
    metric = job.epoch_metrics.filter(per_class_accuracy__isnull=False).order_by("-epoch").first()
    if metric is None:
        return None
    names = class_labels(job)
    matrix = metric.confusion_matrix
    support = [sum(row) for row in matrix] if matrix else [None] * len(names)
    rows = [
        {"name": name, "accuracy": accuracy, "support": count}
        for name, accuracy, count in zip(names, metric.per_class_accuracy, support, strict=False)
    ]
    confusion = None
    if matrix and len(names) <= MAX_CONFUSION_SHOWN:
        confusion = {"classes": names, "rows": [{"name": n, "counts": r} for n, r in zip(names, matrix, strict=False)]}
    return {
        "epoch": metric.epoch,
        "top5_accuracy": metric.top5_accuracy,
        "rows": rows[:MAX_CLASSES_SHOWN],
        "more": max(0, len(rows) - MAX_CLASSES_SHOWN),
        "confusion": confusion,
    }


def _epoch_rows(job: Job, metrics: list[dict]) -> list[dict]:
    """The epochs table: each epoch's numbers and where its time went (timing.py)."""
    times = epoch_times(job)
    return [{**m, "time": times.get(m["epoch"])} for m in metrics]


@login_required
def job_epochs(request, job_id):
    """The epochs table's rows, as the job page renders them: its live part polls this."""
    job = _job_for(request, job_id)
    metrics = EpochMetricSerializer(job.epoch_metrics.all(), many=True).data
    return django_render(request, "dashboard/_epoch_rows.html", {"epoch_rows": _epoch_rows(job, list(metrics))})


@login_required
def job_detail(request, job_id):
    job = _job_for(request, job_id)
    metrics = [
        {k: v for k, v in m.items() if k not in PER_CLASS_FIELDS}
        for m in EpochMetricSerializer(job.epoch_metrics.all(), many=True).data
    ]
    checkpoints = CheckpointSerializer(job.checkpoints.all(), many=True, context={"request": request}).data
    data = JobSerializer(job, context={"request": request}).data
    spec = {field: data[field] for field in JobSerializer.Meta.fields if field in spec_fields() and field != "dataset"}
    if "project" in spec:  # by name, and tags as a list of names
        spec["project"] = data.get("project_name") or "–"
    if "tags" in spec:
        spec["tags"] = ", ".join(spec["tags"]) or "–"
    refusal = selectors.job_resume_refusal(job)
    context = {
        "job": job,
        "data": data,
        "metrics": metrics,
        "epoch_rows": _epoch_rows(job, metrics),
        "class_metrics": _class_metrics(job),
        "grid": _task_grid(job),
        "checkpoints": checkpoints,
        "spec": {"dataset": job.dataset, **spec, "input_shape": job.input_shape, "num_classes": job.num_classes},
        "resumable": refusal is None,
        # A failed or cancelled job that may not resume says why (a diverged one: lower the learning rate).
        "resume_refusal": refusal if job.status in (Status.FAILED, Status.CANCELLED) else None,
        "api_owned": job.owner_id == request.user.id,  # the jobs API serves owners only
    }
    return render(request, "dashboard/job_detail.html", context)


@login_required
@require_POST
def job_cancel(request, job_id):
    job = _job_to_change(request, job_id)
    try:
        lifecycle.job_cancel(job=job)
        messages.success(request, "Job cancelled.")
    except lifecycle.JobNotActive as exc:
        messages.error(request, str(exc))
    except lifecycle.JobGone:
        messages.error(request, "The job was deleted meanwhile.")
        return redirect("dashboard:jobs")
    back = request.POST.get("next", "")
    if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        return redirect(back)
    return redirect("dashboard:job", job_id=job.id)


@login_required
@require_POST
def job_resume(request, job_id):
    job = _job_to_change(request, job_id)
    try:
        epoch = lifecycle.job_resume(job=job)
        messages.success(request, f"Job resumed at epoch {epoch}.")
    except lifecycle.JobNotResumable as exc:
        messages.error(request, str(exc))
    except lifecycle.JobGone:
        messages.error(request, "The job was deleted meanwhile.")
        return redirect("dashboard:jobs")
    return redirect("dashboard:job", job_id=job.id)


@login_required
def job_submit(request):
    values: dict = {}
    errors: dict = {}
    if request.method == "POST":
        values, errors = spec_values(request.POST)  # errors: text that is not the JSON or list a field takes
        if not errors:
            try:
                job = lifecycle.job_create(owner=request.user, spec=job_spec_validate(owner=request.user, data=values))
                messages.success(request, "Job submitted.")
                for warning in queue_consumers.queue_warnings(job.queue):
                    messages.warning(request, warning)
                return redirect("dashboard:job", job_id=job.id)
            except SpecInvalid as exc:
                errors = exc.errors
            except QuotaExceeded as exc:
                errors = {exc.field or "non_field_errors": [str(exc)]}
    datasets = Dataset.objects.filter(owner=request.user).order_by("name")
    projects = selectors.projects_writable_by(request.user).order_by("name")
    context = {
        "fields": form_fields(values, errors, datasets, projects),
        "non_field_errors": errors.get("non_field_errors", []),
        "has_errors": bool(errors),
    }
    return render(request, "dashboard/submit.html", context, status=400 if errors else 200)


def _shown(job: Job, field: str) -> str:
    if field == "status":
        return formatting.status_label(job)
    return formatting.number(getattr(job, field))


@login_required
def compare(request):
    ids = []  # ?jobs=<id>&jobs=<id> from the ticked rows of the jobs list, or ?jobs=<id>,<id>
    for raw in ",".join(request.GET.getlist("jobs")).replace(" ", ",").split(","):
        try:
            ids.append(uuid.UUID(raw.strip()))
        except ValueError:
            continue
    ids = list(dict.fromkeys(ids))[:MAX_COMPARED]
    found = {job.id: job for job in visible_jobs(request.user).filter(id__in=ids).prefetch_related("epoch_metrics")}
    if ids and len(found) < len(ids):
        raise Http404("no such job")
    jobs = [found[i] for i in ids]
    series = [
        {
            "label": job.name or f"{job.model_type}/{job.dataset} {str(job.id)[:8]}",
            "points": [  # an epoch eval_every skipped has no validation accuracy: no point
                {"x": m.epoch, "y": m.val_accuracy} for m in job.epoch_metrics.all() if m.val_accuracy is not None
            ],
        }
        for job in jobs
    ]
    known = spec_fields()
    shown = [f for f in JobSerializer.Meta.fields if f in known] + ["status"]
    rows = [{"field": f, "values": [_shown(job, f) for job in jobs]} for f in shown]
    best = {"field": "best val accuracy", "values": [formatting.accuracy(job.best_val_accuracy) for job in jobs]}
    rows = [best, *rows]
    context = {"jobs": jobs, "series": series, "rows": rows, "enough": len(jobs) >= 2, "max_compared": MAX_COMPARED}
    return render(request, "dashboard/compare.html", context)
