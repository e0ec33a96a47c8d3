"""From a trained job to a model in production, on real processes: training workers and
the control worker (webhook deliveries, scheduled runs and their judging) against real
Redis, PostgreSQL and S3, the API over HTTP, and a webhook receiver on loopback."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time

import pytest

from jobs.schedules import tasks as schedule_tasks
from jobs.schedules.models import ScheduleRun
from tensorfleet_site.access.services import token_create
from tests.factories import UserFactory
from tests.integration.conftest import ApiClient
from tests.processes import REPO, CeleryWorker, wait_for
from tests.registry_helpers import noisy
from tests.webhook_receiver import start_receiver

pytestmark = pytest.mark.integration

SECRET = "integration-hook-secret"
SPEC = {"model_type": "mlp", "dataset": "iris", "num_workers": 2, "epochs": 4, "seed": 3, "threads": 1}


@pytest.fixture(scope="module")
def control_env(worker_env):
    return {**worker_env, "TENSORFLEET_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1", "TENSORFLEET_WEBHOOK_RETRY_BACKOFF": "1"}


@pytest.fixture(scope="module")
def control_worker(control_env, tmp_path_factory):
    worker = CeleryWorker("control", control_env, tmp_path_factory.mktemp("control-log"), queues="control")
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def api(http_api, control_worker, settings):
    settings.TENSORFLEET_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]  # the API checks the URL at registration
    return http_api


def hook(api, url: str, events: list[str]) -> dict:
    made = api.post("/webhooks", {"url": url, "events": events, "secret": SECRET})
    assert made.status_code == 201, made.text
    return made.json()


def put(api, path: str, body: dict):
    return api.session.put(api.base + path, json=body, timeout=30)


def test_registry_champion_webhooks_and_retries_on_workers(api, workers, control_worker, live_server):
    receiver = start_receiver()
    flaky = start_receiver(answers=[500, 502, 200])
    try:
        hook(api, receiver.url, ["job.succeeded", "model.alias_moved"])
        retried = hook(api, flaky.url, ["model.alias_moved"])
        started = time.monotonic()
        weak = api.post("/jobs", {**SPEC, "epochs": 1, "learning_rate": 0.0005}).json()
        strong = api.post("/jobs", {**SPEC, "learning_rate": 0.02}).json()
        weak, strong = api.wait_job(weak["id"]), api.wait_job(strong["id"])
        trained_s = time.monotonic() - started
        assert weak["status"] == strong["status"] == "succeeded"
        assert strong["metrics"]["best_val_accuracy"] > weak["metrics"]["best_val_accuracy"]

        assert api.post("/models", {"name": "iris-prod"}).status_code == 201
        v1 = api.post("/models/iris-prod/versions", {"job": weak["id"]}).json()
        v2 = api.post("/models/iris-prod/versions", {"job": strong["id"]}).json()
        assert (v1["version"], v2["version"]) == (1, 2)
        assert put(api, "/models/iris-prod/aliases/champion", {"version": 1}).json()["version"] == 1
        assert put(api, "/models/iris-prod/aliases/champion", {"version": 2}).json()["version"] == 2
        download = api.get("/models/iris-prod/aliases/champion/download")
        assert download.status_code == 200
        served = hashlib.sha256(download.content).hexdigest()
        assert served == download.headers["X-Checksum-SHA256"] == v2["sha256"] != v1["sha256"]

        stranger = ApiClient(live_server.url, token_create(user=UserFactory()))
        for path in (
            "/models/iris-prod",
            "/models/iris-prod/versions/2/download",
            "/models/iris-prod/aliases/champion/download",
        ):
            assert stranger.get(path).status_code == 404, path
        assert (
            stranger.session.put(stranger.base + "/models/iris-prod/aliases/champion", json={"version": 1}).status_code
            == 404
        )

        got = receiver.wait_for(4, timeout=60)
        assert sorted(r.event for r in got) == ["job.succeeded"] * 2 + ["model.alias_moved"] * 2
        assert all(r.signed_with(SECRET) for r in got)
        moves = [r.document["data"] for r in got if r.event == "model.alias_moved"]
        assert {(m["previous_version"], m["version"]) for m in moves} == {(None, 1), (1, 2)}

        def delivered():
            found = api.get(f"/webhooks/{retried['id']}/deliveries").json()["results"]
            done = [d for d in found if d["status"] != "pending"]
            return done if len(done) == 2 else None

        deliveries = wait_for(delivered, timeout=90, interval=0.5, what="the flaky receiver's deliveries")
        codes = [[a["status_code"] for a in d["attempts"]] for d in deliveries]
        # The receiver answers 500, then 502, then 200 to whatever comes: the two moves' deliveries
        # may interleave, but between them they met both errors and each got through by retrying.
        assert sorted(c for attempts in codes for c in attempts) == [200, 200, 500, 502]
        assert all(attempts[-1] == 200 for attempts in codes) and max(len(a) for a in codes) >= 2

        # The job's deletion leaves the version's file (in S3, under registry/).
        assert api.session.delete(f"{api.base}/jobs/{strong['id']}", timeout=30).status_code == 204
        again = api.get("/models/iris-prod/versions/2/download")
        assert hashlib.sha256(again.content).hexdigest() == v2["sha256"]
        print(
            f"\nregistry flow: weak {weak['metrics']['best_val_accuracy']:.4f}, strong "
            f"{strong['metrics']['best_val_accuracy']:.4f}, both trained in {trained_s:.1f} s; "
            f"champion serves v2 sha256 {served[:16]}; flaky receiver attempts {codes}"
        )
    finally:
        receiver.server.shutdown()
        flaky.server.shutdown()


def upload(api, data: bytes, name: str) -> dict:
    made = api.session.post(api.base + "/datasets", files={"file": ("data.csv", data)}, data={"name": name}, timeout=60)
    assert made.status_code == 201, made.text
    return made.json()


def test_a_schedule_runs_on_the_newest_upload_and_promotes_only_improvements(api, workers, control_worker):
    upload(api, noisy(1, 0.6), "churn")
    spec = {"model_type": "mlp", "dataset": "churn", "epochs": 4, "num_workers": 2, "learning_rate": 0.02, "seed": 5}
    rule = {"model": "churn-model", "alias": "champion", "metric": "val_accuracy"}
    made = api.post("/schedules", {"name": "minutely", "cron": "* * * * *", "spec": spec, "promotion": rule})
    assert made.status_code == 201, made.text
    schedule = made.json()

    def beat() -> ScheduleRun:
        """Beat's message for a cron time, sent to the control queue as beat sends it."""
        before = ScheduleRun.objects.filter(schedule_id=schedule["id"]).count()
        schedule_tasks.run.apply_async(args=[schedule["id"]], queue="control")

        def judged():
            run = ScheduleRun.objects.filter(schedule_id=schedule["id"]).order_by("-number").first()
            return run if run and run.number > before and run.finished_at else None

        return wait_for(judged, timeout=180, interval=0.5, what="the scheduled run to be judged")

    runs = [beat()]
    upload(api, noisy(1, 0.0), "churn")
    runs.append(beat())
    upload(api, noisy(1, 0.4), "churn")
    runs.append(beat())
    summary = [(r.number, r.dataset_version, round(r.metric_value, 4), r.promoted, r.version) for r in runs]
    print(f"\nschedule runs (number, dataset version, val_accuracy, promoted, version): {summary}")
    assert [r.dataset_version for r in runs] == [1, 2, 3]
    assert [r.status for r in runs] == ["succeeded"] * 3
    assert [(r.promoted, r.version) for r in runs] == [(True, 1), (True, 2), (False, None)]
    assert api.get("/models/churn-model/aliases/champion").json()["version"] == 2


def test_submit_job_below_min_accuracy_exits_non_zero_on_workers(api, workers, worker_env):
    command = [sys.executable, "manage.py", "submit_job", "--model", "logreg", "--dataset", "iris", "--epochs", "1",
               "--lr", "0.0005", "--workers", "2", "--owner", api.user.username, "--watch", "--min-accuracy", "0.99"]  # fmt: skip
    env = {**os.environ, **worker_env}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 4, done.stderr[-2000:]
    assert "below --min-accuracy 0.99" in done.stderr
    print(f"\nsubmit_job --min-accuracy 0.99: exit {done.returncode}: {done.stderr.strip().splitlines()[-1]}")
