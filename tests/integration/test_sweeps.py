"""A hyperparameter sweep on real Celery worker processes (two, one task at a time each):
at most ``max_concurrent`` trials at once, the weak ones stopped early by ASHA, the best
trial reported with its checkpoint, and a cancel that stops what runs."""

from __future__ import annotations

import hashlib
import os
import time
from datetime import datetime

import pytest

from tests.integration.conftest import elapsed
from tests.processes import wait_for

pytestmark = pytest.mark.integration

SWEEP = {
    "name": "digits-mlp",
    "base": {"model_type": "mlp", "dataset": "digits", "epochs": 6, "num_workers": 1, "threads": 1},
    "space": {"learning_rate": {"log_uniform": [1e-4, 1e-1]}, "batch_size": {"choice": [64, 128]}},
    "search": "random",
    "trials": 9,
    "max_concurrent": 3,
    "metric": "val_accuracy",
    "mode": "max",
    "early_stopping": {"type": "asha", "grace_epochs": 1, "reduction_factor": 3},
}


def wait_sweep(api, sweep_id, *, until=("succeeded", "failed", "cancelled"), timeout=180) -> dict:
    def done():
        body = api.get(f"/sweeps/{sweep_id}").json()
        return body if body["status"] in until else None

    return wait_for(done, timeout=timeout, interval=0.5, what=f"sweep {sweep_id} to reach {until}")


def trial_spans(api, trials) -> list[tuple[datetime, datetime]]:
    """Each trial from its first shard's start to its last shard's end (the Task rows)."""
    spans = []
    for t in trials:
        tasks = api.get(f"/jobs/{t['job_id']}/tasks", params={"page_size": 1000}).json()["results"]
        starts = [datetime.fromisoformat(x["started_at"]) for x in tasks if x["started_at"]]
        ends = [datetime.fromisoformat(x["finished_at"]) for x in tasks if x["finished_at"]]
        spans.append((min(starts), max(ends)))
    return spans


def most_at_once(spans) -> int:
    # An end sorts before a start at the same instant: touching spans do not overlap.
    events = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def run_sweep(api) -> tuple[dict, list[dict], float]:
    start = time.monotonic()
    created = api.post("/sweeps", SWEEP)
    assert created.status_code == 201, created.text
    assert len(created.json()["trial_jobs"]) == 3  # max_concurrent started at once
    sweep = wait_sweep(api, created.json()["id"])
    wall = elapsed(start)
    trials = api.get(f"/sweeps/{sweep['id']}/trials", params={"page_size": 100}).json()["results"]
    return sweep, trials, wall


def test_a_random_sweep_runs_three_trials_at_a_time_and_stops_the_weak_ones(http_api, workers):
    sweep, trials, wall = run_sweep(http_api)
    assert sweep["status"] == "succeeded", sweep["error"]
    assert [t["trial_number"] for t in trials] == list(range(1, 10))
    assert {t["status"] for t in trials} <= {"succeeded", "cancelled"}

    spans = trial_spans(http_api, trials)
    peak = most_at_once(spans)
    assert 2 <= peak <= 3, f"{peak} trials ran at once"

    stopped = [t for t in trials if t["status"] == "cancelled"]
    assert stopped and all(t["reason"] == "early-stopped" and t["completed_epochs"] in (1, 3) for t in stopped)
    assert sweep["counts"]["early_stopped"] == len(stopped)
    finished = [t for t in trials if t["status"] == "succeeded"]
    assert finished and all(t["completed_epochs"] == 6 for t in finished)
    best = sweep["best"]
    assert best["metric"] >= max(t["val_accuracy"] for t in finished)
    assert best["metric"] == max(t["metric"] for t in trials)

    # The best trial's checkpoint downloads and is what it says it is; its spec trains it again.
    checkpoint = best["checkpoint"]
    download = http_api.session.get(checkpoint["download_url"], timeout=30)
    assert download.status_code == 200 and hashlib.sha256(download.content).hexdigest() == checkpoint["sha256"]
    best_trial = next(t for t in trials if t["job_id"] == best["job_id"])
    assert best["spec"]["learning_rate"] == best_trial["params"]["learning_rate"]
    assert best["spec"]["batch_size"] == best_trial["params"]["batch_size"]
    # Stopped trials keep their checkpoints.
    kept = http_api.get(f"/jobs/{stopped[0]['job_id']}/checkpoints").json()
    assert stopped[0]["completed_epochs"] in {c["epoch"] for c in kept}

    epochs = sum(t["completed_epochs"] for t in trials)
    busy = sum((b - a).total_seconds() for a, b in spans)
    print(
        f"\nsweep: {wall:.1f}s wall for 9 trials ({epochs} epochs, {len(stopped)} stopped early), "
        f"at most {peak} at once; the trials' spans add up to {busy:.1f}s"
    )


def test_cancelling_a_sweep_cancels_its_running_trials(http_api, workers):
    spec = {**SWEEP, "name": "to-cancel", "base": {**SWEEP["base"], "epochs": 300}, "trials": 6, "max_concurrent": 2}
    sweep = http_api.post("/sweeps", spec).json()

    def a_trial_trains():
        body = http_api.get(f"/sweeps/{sweep['id']}").json()
        return any(t["completed_epochs"] >= 1 for t in body["trial_jobs"])

    wait_for(a_trial_trains, timeout=60, interval=0.25, what="a trial to record an epoch")
    cancelled = http_api.post(f"/sweeps/{sweep['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "cancelled"
    assert [t["status"] for t in body["trial_jobs"]] == ["cancelled", "cancelled"]

    def settled():
        tasks = []
        for t in body["trial_jobs"]:
            tasks += http_api.get(f"/jobs/{t['job_id']}/tasks", params={"page_size": 1000}).json()["results"]
        return tasks if not any(x["status"] in ("running", "queued") for x in tasks) else None

    wait_for(settled, timeout=15, what="the trials' shards to stop")
    final = http_api.get(f"/sweeps/{sweep['id']}").json()
    assert final["status"] == "cancelled" and len(final["trial_jobs"]) == 2  # no trial started after the cancel
    assert all(t["completed_epochs"] < 300 for t in final["trial_jobs"])
    assert http_api.post(f"/sweeps/{sweep['id']}/cancel").status_code == 409


@pytest.mark.skipif(not os.environ.get("SWEEP_BASELINE"), reason="a measurement: set SWEEP_BASELINE=1")
def test_sweep_wall_time_against_its_trials_one_after_another(http_api, workers):
    """The same trials (each for the epochs it trained in the sweep) as plain jobs, one at a time."""
    sweep, trials, wall = run_sweep(http_api)
    start = time.monotonic()
    for t in trials:
        spec = {**http_api.get(f"/sweeps/{sweep['id']}").json()["base"], **t["params"]}
        spec["epochs"] = t["completed_epochs"]
        job = http_api.post("/jobs", spec).json()
        assert http_api.wait_job(job["id"])["status"] == "succeeded"
    serial = elapsed(start)
    print(f"\nsweep {wall:.1f}s (max_concurrent 3, 2 workers) vs the same trials one after another {serial:.1f}s")
