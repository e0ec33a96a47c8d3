"""Observability for real: a job trains on two `celery worker` processes while the
API's and the workers' /metrics are scraped over HTTP, and what they count agrees with
the database; /ready follows a Redis that goes away and comes back; Flower serves its
metrics to Prometheus behind its login and keeps its task history across a restart."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from jobs.models import Job, Status, Task
from tests.processes import REPO, RedisServer, free_ports, wait_for

pytestmark = pytest.mark.integration

# About a second per shard on one thread: long enough to be scraped while it runs.
SPEC = {
    "model_type": "mlp",
    "dataset": "synthetic",
    "dataset_size": 40000,
    "num_workers": 2,
    "epochs": 3,
    "threads": 1,
}


def metric_value(text: str, name: str, **labels) -> float:
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                total += sample.value
    return total


def get_text(url: str) -> str:
    response = requests.get(url, timeout=10)
    assert response.status_code == 200, f"{url}: {response.status_code} {response.text[:300]}"
    return response.text


class Scrape:
    """One scrape of the API's /metrics and of every worker's exporter."""

    def __init__(self, api_url: str, workers):
        self.api = get_text(api_url + "/metrics")
        self.workers = [get_text(w.metrics_url) for w in workers]

    def workers_value(self, name: str, **labels) -> float:
        return sum(metric_value(text, name, **labels) for text in self.workers)


def test_metrics_from_api_and_workers_agree_with_the_database(http_api, workers, live_server):
    before = Scrape(live_server.url, workers)
    shard = {"task": "workers.train_shard", "queue": "cpu"}

    created = http_api.post("/jobs", SPEC)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]

    # While it runs: the API exports the job's epoch, the workers count its shards as they start.
    started_before = before.workers_value("tensorfleet_tasks_total", state="started", **shard)

    def running():
        now = Scrape(live_server.url, workers)
        job_exported = metric_value(now.api, "tensorfleet_job_current_epoch", job_id=job_id) >= 1
        shards_counted = now.workers_value("tensorfleet_tasks_total", state="started", **shard) > started_before
        return now if job_exported and shards_counted else None

    during = wait_for(running, timeout=120, interval=0.2, what="the running job in /metrics")
    assert metric_value(during.api, "tensorfleet_job_epochs", job_id=job_id) == 3

    job = http_api.wait_job(job_id)
    assert job["status"] == "succeeded", job["error"]
    after = Scrape(live_server.url, workers)

    def delta(name, **labels):
        return after.workers_value(name, **labels) - before.workers_value(name, **labels)

    rows = Task.objects.filter(job_id=job_id)
    succeeded = rows.filter(status=Status.SUCCEEDED)
    # Counted where the row becomes succeeded: the counters equal the rows.
    assert delta("tensorfleet_tasks_total", state="succeeded", **shard) == succeeded.count() == 6
    assert delta("tensorfleet_samples_trained_total", queue="cpu") == sum(succeeded.values_list("samples", flat=True))
    assert delta("tensorfleet_task_duration_seconds_count", queue="cpu") == 6
    assert delta("tensorfleet_task_duration_seconds_sum", queue="cpu") == pytest.approx(
        sum(succeeded.values_list("duration_s", flat=True)), rel=1e-6
    )
    assert delta("tensorfleet_tasks_total", state="failed") == rows.filter(status=Status.FAILED).count() == 0
    assert delta("tensorfleet_tasks_total", state="started", **shard) >= 6  # every delivery, duplicates too
    assert delta("tensorfleet_tasks_total", state="started", task="workers.aggregate_epoch", queue="cpu") >= 3
    # Both workers trained, and each exporter answered for its own pool.
    assert all(metric_value(text, "tensorfleet_tasks_total", state="succeeded", **shard) > 0 for text in after.workers)

    # The API: requests by view, jobs by status, the fleet's gauges; the finished job's series are gone.
    post = {"view": "job-list", "method": "POST"}
    name = "django_http_requests_total_by_view_transport_method_total"
    assert metric_value(after.api, name, **post) - metric_value(before.api, name, **post) == 1
    for status in Status.values:
        assert metric_value(after.api, "tensorfleet_jobs", status=status) == Job.objects.filter(status=status).count()
    assert f'job_id="{job_id}"' not in after.api
    assert metric_value(after.api, "tensorfleet_queue_depth", queue="cpu") == 0
    assert metric_value(after.api, "tensorfleet_metrics_source_up", source="broker") == 1

    # Workers online come from a broadcast with a short timeout: a busy machine may need a second try.
    def both_workers_seen():
        text = get_text(live_server.url + "/metrics")
        counted = metric_value(text, "tensorfleet_queue_workers", queue="cpu")
        return text if counted >= 2 and metric_value(text, "tensorfleet_workers_online") >= 2 else None

    wait_for(both_workers_seen, timeout=30, interval=1, what="both workers in tensorfleet_queue_workers")

    overview = http_api.get("/overview").json()
    assert overview["jobs"]["by_status"]["succeeded"] == 1
    assert overview["tasks"]["completed"] == 6
    assert overview["tasks"]["samples_trained"] == sum(succeeded.values_list("samples", flat=True))
    assert {w.hostname for w in workers} <= {w["name"] for w in overview["workers"]["workers"]}


def test_ready_names_the_broker_while_redis_is_down_and_recovers(
    live_server, transactional_db, s3_storage, settings, tmp_path
):
    redis_server = RedisServer(tmp_path / "redis").start()
    settings.CELERY_BROKER_URL = redis_server.url  # the live server's readiness checks this Redis
    ready = live_server.url + "/api/v1/ready"
    try:
        first = requests.get(ready, timeout=10)
        assert first.status_code == 200, first.text

        redis_server.stop()  # kill -9: the port closes
        down = requests.get(ready, timeout=10)
        assert down.status_code == 503
        assert down.json()["failed"] == ["broker"], down.text

        redis_server.start()  # the same port again

        def answered_ok():
            response = requests.get(ready, timeout=10)
            return response if response.status_code == 200 else None

        assert wait_for(answered_ok, timeout=30, what="/ready back").json()["failed"] == []
    finally:
        redis_server.stop()


def test_flower_serves_metrics_behind_its_login_and_keeps_history_across_a_restart(worker_env, workers, tmp_path):
    from tensorfleet_site.celery import app

    port = free_ports(1)[0]
    base_env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
    env = {**base_env, **worker_env, "FLOWER_BASIC_AUTH": "admin:flower-test"}
    # As runfleet starts it: persistent state in a file, basic auth from the environment.
    cmd = [
        sys.executable, "-m", "celery", "-A", "tensorfleet_site", "flower", "--address=127.0.0.1",
        f"--port={port}", "--persistent=True", f"--db={tmp_path / 'flower.db'}",
    ]  # fmt: skip
    base, login = f"http://127.0.0.1:{port}", ("admin", "flower-test")

    def start() -> subprocess.Popen:
        log = open(tmp_path / "flower.log", "ab")
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: requests.get(base + "/healthcheck", timeout=2).ok, timeout=60, what="Flower")
        return proc

    def tasks() -> dict:
        return requests.get(base + "/api/tasks", auth=login, timeout=10).json()

    flower = start()
    try:
        assert requests.get(base + "/", timeout=10).status_code == 401  # its UI needs the login
        assert requests.get(base + "/", auth=login, timeout=10).status_code == 200
        metrics = requests.get(base + "/metrics", timeout=10)  # what Prometheus scrapes, without the login
        assert metrics.status_code == 200 and "flower_events_total" in metrics.text

        # A task the workers run (a shard of no job: a no-op); Flower learns of it from their events.
        def seen():
            sent = app.send_task("workers.train_shard", args=[str(uuid.uuid4()), 1, 0], queue="cpu")
            return wait_for(lambda: sent.id in tasks() and sent.id, timeout=3, what="the event")

        task_id = wait_for(seen, timeout=60, interval=0, what="Flower to record a task")
        flower.terminate()  # SIGTERM: Flower saves its state
        flower.wait(20)
        flower = start()
        assert task_id in tasks(), "the task history did not survive the restart"
    finally:
        flower.terminate()
        flower.wait(20)
