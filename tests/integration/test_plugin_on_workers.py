"""A model from a plugin package (examples/tensorfleet-example-plugin, installed by
requirements-dev.txt) on real workers: a worker publishes it when it starts and
withdraws it when it stops, a job names it with model_args and trains across two
worker processes, and its final checkpoint loads back into that model from the
safetensors metadata alone and predicts with the recorded accuracy."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
import torch

from jobs.models import ModelOffer
from tests.integration.conftest import elapsed
from tests.processes import CeleryWorker
from workers.splits import build_split
from workers.weights import CONFIG_KEY, load_checkpoint, read_metadata

pytestmark = pytest.mark.integration

SPEC = {
    "model_type": "tinynet",
    "model_args": {"hidden": 48, "channels": 8, "activation": "gelu"},
    "dataset": "digits",
    "num_workers": 2,
    "epochs": 4,
    "learning_rate": 0.01,
}


def test_a_worker_publishes_what_it_can_build_when_it_starts_and_withdraws_it_when_it_stops(
    http_api, worker_env, tmp_path
):
    worker = CeleryWorker("plugins", worker_env, tmp_path, queues="gpu")
    started = time.monotonic()
    worker.start()  # returns once it logged "ready.": its worker_ready handler has published
    try:
        mine = ModelOffer.objects.filter(worker=worker.hostname)
        assert set(mine.values_list("queue", flat=True)) == {"gpu"}
        assert {"tinynet", "resnet18", "cnn"} <= set(mine.values_list("name", flat=True))
        listed = {m["name"]: m for m in http_api.get("/architectures").json()["results"]}
        assert "gpu" in listed["tinynet"]["queues"]
        assert listed["tinynet"]["arguments"]["hidden"] == {"type": "int", "default": 64, "required": False}
        print(f"worker ready and published {mine.count()} models in {elapsed(started)} s")
    finally:
        worker.stop()  # a warm shutdown: worker_shutdown withdraws its offers
    assert worker.proc.returncode is not None
    assert not ModelOffer.objects.filter(worker=worker.hostname).exists(), worker.log_tail()


def test_a_plugin_model_trains_on_workers_and_its_checkpoint_predicts_from_its_metadata(http_api, workers):
    bad = http_api.post("/jobs", {**SPEC, "model_args": {"hidden": 48, "dropuot": 0.1}})
    assert bad.status_code == 400
    assert bad.json() == {
        "model_args": ["'dropuot': unknown argument; tinynet takes activation, channels, dropout, hidden."]
    }

    started = time.monotonic()
    created = http_api.post("/jobs", SPEC)
    assert created.status_code == 201, created.text
    job = http_api.wait_job(created.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["model_args"] == SPEC["model_args"]
    tasks = http_api.get(f"/jobs/{job['id']}/tasks", params={"page_size": 100}).json()["results"]
    assert {t["worker"] for t in tasks} == {w.hostname for w in workers}  # both processes trained it

    final = next(c for c in http_api.get(f"/jobs/{job['id']}/checkpoints").json() if c["kind"] == "final")
    data = http_api.session.get(final["download_url"], timeout=30).content
    assert hashlib.sha256(data).hexdigest() == final["sha256"]
    config = json.loads(read_metadata(data)[CONFIG_KEY])
    assert config == {"model_type": "tinynet", "input_shape": [1, 8, 8], "num_classes": 10,
                      "model_args": SPEC["model_args"]}  # fmt: skip

    model = load_checkpoint(data)  # from the file alone
    assert type(model).__name__ == "TinyNet" and model.head[0].out_features == 48
    split = build_split("digits", seed=0)
    with torch.no_grad():
        accuracy = (model(split.x_val).argmax(1) == split.y_val).float().mean().item()
    assert accuracy == pytest.approx(job["metrics"]["val_accuracy"])
    assert accuracy > 0.8
    print(f"tinynet on digits, 2 workers, 4 epochs: val accuracy {accuracy:.4f}, {elapsed(started)} s")
