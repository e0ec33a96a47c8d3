"""Health, readiness, /metrics, the overview, and the Grafana dashboard against what
the project exports. Real PostgreSQL and Redis; dependencies made unreachable for real
(a closed port), not mocked."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import yaml
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from jobs.models import EpochMetric, Job, Status, Task
from jobs.services import lifecycle
from tests.factories import JobFactory, UserFactory
from tests.processes import free_ports

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "docker" / "grafana" / "dashboards"


def metric_value(text: str, name: str, **labels) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def series(text: str, name: str) -> list[dict[str, str]]:
    return [s.labels for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


def scrape(client, **headers) -> str:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    return response.content.decode()


# --------------------------------------------------------------------------- health and readiness


def test_health_answers_without_credentials(client):
    response = client.get("/api/v1/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db(transaction=True)
def test_ready_when_database_broker_and_storage_answer(client, local_storage):
    response = client.get("/api/v1/ready")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok" and body["failed"] == []
    assert set(body["checks"]) == {"database", "broker", "storage"}
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.django_db(transaction=True)
def test_ready_is_503_naming_the_broker_when_redis_is_unreachable(client, local_storage, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_ports(1)[0]}/0"  # nothing listens there
    response = client.get("/api/v1/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["broker"], body
    assert body["checks"]["broker"]["error"] == "ConnectionError"
    assert body["checks"]["database"]["ok"] and body["checks"]["storage"]["ok"]


@pytest.mark.django_db(transaction=True)
def test_ready_is_503_naming_storage_when_the_s3_endpoint_is_unreachable(client, settings):
    s3 = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": "tensorfleet-nowhere",
            "endpoint_url": f"http://127.0.0.1:{free_ports(1)[0]}",
            "access_key": "x",
            "secret_key": "y",
            "region_name": "us-east-1",
        },
    }
    settings.STORAGES = {**settings.STORAGES, "default": s3, "datasets": s3}
    response = client.get("/api/v1/ready")
    assert response.status_code == 503
    assert response.json()["failed"] == ["storage"]


# --------------------------------------------------------------------------- /metrics


@pytest.mark.django_db
def test_metrics_are_open_without_a_token_configured(client, settings):
    settings.METRICS_TOKEN = ""
    text = scrape(client)
    assert "django_http_requests_before_middlewares_total" in text
    assert "tensorfleet_jobs" in text


@pytest.mark.django_db
def test_metrics_need_the_bearer_token_when_one_is_set(client, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Token s3cret-token").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")
    assert response.status_code == 200 and b"tensorfleet_jobs" in response.content


@pytest.mark.django_db
def test_metrics_count_requests_by_view(client, api):
    before = scrape(client)
    api.get("/api/v1/jobs")
    api.get("/api/v1/jobs")
    after = scrape(client)
    labels = {"view": "job-list", "method": "GET"}
    name = "django_http_requests_total_by_view_transport_method_total"
    assert metric_value(after, name, **labels) - metric_value(before, name, **labels) == 2


@pytest.mark.django_db
def test_job_gauges_cover_running_jobs_only(client):
    running = JobFactory(status=Status.RUNNING, current_epoch=3, completed_tasks=4, train_loss=0.5, val_accuracy=0.8)
    EpochMetric.objects.create(
        job=running,
        epoch=2,
        train_loss=0.5,
        val_loss=0.6,
        val_accuracy=0.8,
        samples=100,
        samples_per_s=250.0,
        duration_s=1,
    )
    starting = JobFactory(status=Status.RUNNING, current_epoch=1)  # no epoch finished yet: no loss
    finished = JobFactory(status=Status.SUCCEEDED, current_epoch=3, train_loss=0.1, val_accuracy=0.9)
    JobFactory(status=Status.QUEUED)

    text = scrape(client)
    for status in Status.values:
        assert metric_value(text, "tensorfleet_jobs", status=status) == Job.objects.filter(status=status).count()
    epochs = {s["job_id"] for s in series(text, "tensorfleet_job_current_epoch")}
    assert epochs == {str(running.id), str(starting.id)}
    assert str(finished.id) not in text  # a finished job has no series at all
    assert metric_value(text, "tensorfleet_job_current_epoch", job_id=str(running.id)) == 3
    assert metric_value(text, "tensorfleet_job_progress", job_id=str(running.id)) == 4 / 6
    assert metric_value(text, "tensorfleet_job_val_accuracy", job_id=str(running.id)) == 0.8
    assert metric_value(text, "tensorfleet_job_samples_per_second", job_id=str(running.id)) == 250.0
    assert [s["job_id"] for s in series(text, "tensorfleet_job_train_loss")] == [str(running.id)]
    assert metric_value(text, "tensorfleet_metrics_source_up", source="database") == 1


@pytest.mark.django_db
def test_queue_depth_is_the_length_of_the_queues_redis_list(client, settings):
    queue = f"tf-test-{uuid.uuid4().hex[:8]}"  # a queue of its own: no worker consumes it
    settings.TENSORFLEET_QUEUES = [queue]
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        broker.rpush(queue, *[b"{}"] * 3)
        text = scrape(client)
    finally:
        broker.delete(queue)
    assert metric_value(text, "tensorfleet_queue_depth", queue=queue) == 3
    assert metric_value(text, "tensorfleet_metrics_source_up", source="broker") == 1
    assert "tensorfleet_workers_online" in text


@pytest.mark.django_db
def test_an_unreachable_broker_drops_its_series_but_not_the_scrape(client, settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_ports(1)[0]}/0"
    text = scrape(client)
    assert metric_value(text, "tensorfleet_metrics_source_up", source="broker") == 0
    assert not series(text, "tensorfleet_queue_depth")
    assert metric_value(text, "tensorfleet_metrics_source_up", source="database") == 1


@pytest.mark.django_db(transaction=True)
def test_shard_counters_agree_with_task_rows(
    client, user, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    spec = dict(
        model_type="logreg", dataset="iris", num_workers=2, epochs=2, batch_size=16, learning_rate=0.05,
        optimizer="adam", momentum=0.0, seed=0, queue="cpu", threads=1,
    )  # fmt: skip
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        job = lifecycle.job_create(owner=user, spec=spec)
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED, job.error
    after = scrape(client)

    def delta(name, **labels):
        return metric_value(after, name, **labels) - metric_value(before, name, **labels)

    rows = Task.objects.filter(job=job, status=Status.SUCCEEDED)
    shard = {"task": "workers.train_shard"}
    assert delta("tensorfleet_tasks_total", state="succeeded", **shard) == rows.count() == 4
    assert delta("tensorfleet_tasks_total", state="started", **shard) == 4
    assert delta("tensorfleet_tasks_total", state="started", task="workers.aggregate_epoch") == 2
    assert delta("tensorfleet_tasks_total", state="failed") == 0
    assert delta("tensorfleet_samples_trained_total") == sum(rows.values_list("samples", flat=True))
    assert delta("tensorfleet_task_duration_seconds_count") == 4
    assert delta("tensorfleet_task_duration_seconds_sum") == pytest.approx(
        sum(rows.values_list("duration_s", flat=True))
    )
    assert not series(after, "tensorfleet_job_current_epoch")  # the job finished: its series are gone


# --------------------------------------------------------------------------- overview


@pytest.mark.django_db
def test_overview_needs_credentials():
    assert APIClient().get("/api/v1/overview").status_code == 401


def _tasks(job, *, recent: int, old: int) -> None:
    now = timezone.now()
    for i in range(recent + old):
        Task.objects.create(
            job=job, epoch=1, shard=i, status=Status.SUCCEEDED, samples=10 * (i + 1), duration_s=float(i + 1),
            finished_at=now - (timedelta(minutes=5) if i < recent else timedelta(hours=2)),
        )  # fmt: skip


@pytest.mark.django_db
def test_overview_counts_the_users_own_jobs_and_last_hours_tasks(api, user, other_user):
    mine = JobFactory(owner=user, status=Status.RUNNING, num_workers=4)
    JobFactory(owner=user, status=Status.SUCCEEDED)
    theirs = JobFactory(owner=other_user, status=Status.FAILED, num_workers=4)
    _tasks(mine, recent=2, old=1)
    _tasks(theirs, recent=3, old=0)

    body = api.get("/api/v1/overview").json()
    assert body["scope"] == "own"
    assert body["jobs"]["total"] == 2
    assert body["jobs"]["by_status"] == {"queued": 0, "running": 1, "succeeded": 1, "failed": 0, "cancelled": 0}
    assert body["tasks"] == {"window_s": 3600, "completed": 2, "samples_trained": 10 + 20, "mean_duration_s": 1.5}
    assert set(body["workers"]) == {"online", "by_queue", "workers"}


@pytest.mark.django_db
def test_staff_overview_covers_every_users_jobs(user, other_user):
    JobFactory(owner=user, status=Status.RUNNING)
    theirs = JobFactory(owner=other_user, status=Status.FAILED, num_workers=4)
    _tasks(theirs, recent=3, old=1)
    staff = APIClient()
    staff.force_authenticate(UserFactory(is_staff=True))
    body = staff.get("/api/v1/overview").json()
    assert body["scope"] == "all"
    assert body["jobs"]["by_status"]["running"] == 1 and body["jobs"]["by_status"]["failed"] == 1
    assert body["tasks"]["completed"] == 3 and body["tasks"]["samples_trained"] == 10 + 20 + 30


# --------------------------------------------------------------------------- Grafana and Prometheus

_PROMQL_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless"}
_PROMQL_WORDS |= {"offset", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions,
    keywords, label names (in {...} or by (...)) or durations ([5m])."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = _PROMQL_LABEL_LISTS.sub("", expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        if expr[match.end() :].lstrip().startswith("(") or match.group().lower() in _PROMQL_WORDS:
            continue  # a function or an aggregation, or a keyword
        names.add(match.group())
    return names


def test_promql_metric_names_finds_metrics_only():
    expr = 'histogram_quantile(0.95, sum by (le, queue) (rate(a_seconds_bucket{queue=~"cpu|gpu"}[5m]))) / on(x) b'
    assert promql_metric_names(expr) == {"a_seconds_bucket", "b"}


def exported_metric_names() -> set[str]:
    """Every sample name the API's and the workers' /metrics can carry."""
    from django_prometheus.middleware import Metrics
    from prometheus_client import REGISTRY

    import monitoring_app.metrics  # noqa: F401 - the task counters (API and workers)
    from monitoring_app.collectors import FleetCollector

    Metrics.get_instance()  # django-prometheus makes its request metrics with its first middleware
    suffixes = {
        "counter": ["_total", "_created"],
        "histogram": ["_bucket", "_sum", "_count", "_created"],
        "summary": ["_sum", "_count", "_created", ""],
        "gauge": [""],
        "info": ["_info"],
    }
    names = set()
    for family in [*REGISTRY.collect(), *FleetCollector().describe()]:
        names |= {family.name + suffix for suffix in suffixes.get(family.type, [""])}
    return names


def dashboard_expressions() -> list[tuple[str, str]]:
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())  # loads as valid JSON
        for panel in dashboard["panels"]:
            found += [(f"{path.name}: {panel['title']}", target["expr"]) for target in panel["targets"]]
    return found


def test_every_dashboard_expression_names_an_exported_metric():
    exported = exported_metric_names()
    assert {"tensorfleet_tasks_total", "tensorfleet_job_val_accuracy", "tensorfleet_queue_depth"} <= exported
    expressions = dashboard_expressions()
    assert expressions
    unknown = [(where, name) for where, expr in expressions for name in promql_metric_names(expr) - exported]
    assert not unknown, f"dashboard reads metrics nobody exports: {unknown}"


def test_dashboard_charts_throughput_queues_durations_failures_and_running_jobs():
    names = set().union(*(promql_metric_names(expr) for _, expr in dashboard_expressions()))
    assert {
        "tensorfleet_tasks_total",  # throughput and failures
        "tensorfleet_samples_trained_total",
        "tensorfleet_queue_depth",
        "tensorfleet_task_duration_seconds_bucket",
        "tensorfleet_job_train_loss",
        "tensorfleet_job_val_accuracy",
    } <= names
    exprs = " ".join(expr for _, expr in dashboard_expressions())
    assert 'state=~"failed|retried"' in exprs


def test_prometheus_scrapes_the_api_the_workers_and_flower():
    config = yaml.safe_load((ROOT / "docker" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["tensorfleet-api"]["authorization"]["type"] == "Bearer"
    assert jobs["tensorfleet-workers"]["metrics_path"] == "/metrics"
    assert jobs["flower"]["static_configs"][0]["targets"] == ["flower:5555"]
    assert jobs["flower"]["metrics_path"] == "/metrics"
