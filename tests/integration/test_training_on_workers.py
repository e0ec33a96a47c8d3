"""A job submitted over HTTP trains on real Celery worker processes against real
Redis, PostgreSQL and S3, and its checkpoint is what it says it is."""

from __future__ import annotations

import hashlib

import pytest
import torch

from workers.splits import build_split
from workers.weights import load_checkpoint

pytestmark = pytest.mark.integration

CNN_DIGITS = {"model_type": "cnn", "dataset": "digits", "num_workers": 2, "epochs": 6}


def test_cnn_on_digits_trains_across_two_workers_and_checkpoints(http_api, workers, s3_storage):
    created = http_api.post("/jobs", CNN_DIGITS)
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["status"] == "queued" and job["total_tasks"] == 12

    job = http_api.wait_job(job["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["completed_tasks"] == 12 and job["progress"] == 1.0
    assert job["metrics"]["val_accuracy"] >= 0.95

    tasks = http_api.get(f"/jobs/{job['id']}/tasks", params={"page_size": 100}).json()["results"]
    assert len(tasks) == 12 and {t["status"] for t in tasks} == {"succeeded"}
    assert {t["worker"] for t in tasks} == {w.hostname for w in workers}  # both processes trained

    metrics = http_api.get(f"/jobs/{job['id']}/metrics").json()
    assert [m["epoch"] for m in metrics] == list(range(1, 7))
    assert metrics[-1]["val_accuracy"] == job["metrics"]["val_accuracy"]
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]

    checkpoints = http_api.get(f"/jobs/{job['id']}/checkpoints").json()
    final = next(c for c in checkpoints if c["kind"] == "final")
    assert final["epoch"] == 6
    download = http_api.session.get(final["download_url"], timeout=30)
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == final["sha256"]
    # The bytes live in the S3 bucket, not on a local disk.
    assert f"jobs/{job['id']}/checkpoints/final.safetensors" in s3_storage.keys(f"jobs/{job['id']}/")

    model = load_checkpoint(download.content)
    split = build_split("digits", seed=0)
    with torch.no_grad():
        accuracy = (model(split.x_val).argmax(1) == split.y_val).float().mean().item()
    assert accuracy == pytest.approx(job["metrics"]["val_accuracy"])


def test_the_same_job_twice_gives_the_same_final_sha256(http_api, workers):
    spec = {**CNN_DIGITS, "epochs": 3}
    first = http_api.post("/jobs", spec).json()
    second = http_api.post("/jobs", spec).json()
    finals = []
    for job in (first, second):
        done = http_api.wait_job(job["id"])
        assert done["status"] == "succeeded", done["error"]
        checkpoints = http_api.get(f"/jobs/{job['id']}/checkpoints").json()
        finals.append(next(c["sha256"] for c in checkpoints if c["kind"] == "final"))
    assert finals[0] == finals[1]


def test_a_cancelled_job_stops(http_api, workers):
    job = http_api.post("/jobs", {"model_type": "cnn", "dataset": "digits", "num_workers": 2, "epochs": 200}).json()
    http_api.wait_job(job["id"], until=("running",), timeout=60)

    cancelled = http_api.post(f"/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"

    def settled():
        tasks = http_api.get(f"/jobs/{job['id']}/tasks", params={"page_size": 1000}).json()["results"]
        return tasks if not any(t["status"] in ("running", "queued") for t in tasks) else None

    from tests.processes import wait_for

    tasks = wait_for(settled, timeout=15, what="running shards to stop")
    started_epochs = max(t["epoch"] for t in tasks)
    final = http_api.get(f"/jobs/{job['id']}").json()
    assert final["status"] == "cancelled"
    assert final["completed_epochs"] < 200 and started_epochs < 200
    assert http_api.post(f"/jobs/{job['id']}/cancel").status_code == 409
