"""Scheduled retraining: a schedule's beat entry, runs started by beat's task, the
promotion rule (the alias moves only when the metric improves), and runs that fail,
overlap or can no longer start."""

from __future__ import annotations

import contextlib
import json

import pytest
from django_celery_beat.models import PeriodicTask
from rest_framework.test import APIClient

from jobs.models import Job, Status
from jobs.registry.models import ModelAlias
from jobs.schedules import tasks
from jobs.schedules.models import Schedule, ScheduleRun
from jobs.services import lifecycle
from tensorfleet_site.access.services import token_create
from tests.webhook_receiver import start_receiver

SPEC = dict(
    model_type="mlp",
    dataset="iris",
    num_workers=2,
    epochs=2,
    batch_size=16,
    learning_rate=0.002,
    optimizer="adam",
    seed=3,
    queue="cpu",
    threads=1,
)
RULE = {"model": "iris-prod", "alias": "champion", "metric": "val_accuracy"}


def schedule(api, **overrides) -> dict:
    body = {"name": "nightly", "cron": "* * * * *", "spec": SPEC, "promotion": RULE, **overrides}
    response = api.post("/api/v1/schedules", body, format="json")
    assert response.status_code == 201, response.data
    return response.data


def beat(schedule_id, capture=None) -> ScheduleRun | None:
    """What beat's message makes a control worker do at a cron time: run the schedule's
    task (called here in-process; what it starts runs eagerly where a test asks)."""
    with capture(execute=True) if capture else contextlib.nullcontext():
        tasks.run(str(schedule_id))
    return ScheduleRun.objects.filter(schedule_id=schedule_id).order_by("-number").first()


def champion() -> int | None:
    alias = ModelAlias.objects.filter(model__name="iris-prod", name="champion").select_related("version").first()
    return alias.version.version if alias else None


@pytest.mark.django_db(transaction=True)
def test_a_schedule_keeps_its_beat_entry_in_step(api):
    made = schedule(api, cron="*/5 2 * * 1-5")
    task = PeriodicTask.objects.get(name=f"schedule {made['id']}")
    assert task.task == "schedules.run" and json.loads(task.args) == [made["id"]]
    assert task.queue == "control" and task.enabled
    cron = task.crontab
    assert (cron.minute, cron.hour, cron.day_of_month, cron.month_of_year, cron.day_of_week) == (
        "*/5",
        "2",
        "*",
        "*",
        "1-5",
    )
    assert str(cron.timezone) == "UTC"
    assert made["next_run_at"] and made["promotion"] == RULE

    changed = api.patch(f"/api/v1/schedules/{made['id']}", {"cron": "0  3 * * *", "enabled": False}, format="json")
    assert changed.status_code == 200 and changed.data["cron"] == "0 3 * * *" and changed.data["next_run_at"] is None
    task.refresh_from_db()
    assert (task.crontab.minute, task.crontab.hour, task.enabled) == ("0", "3", False)
    assert beat(made["id"]) is None  # a disabled schedule's beat does nothing

    assert api.delete(f"/api/v1/schedules/{made['id']}").status_code == 204
    assert not PeriodicTask.objects.filter(name=f"schedule {made['id']}").exists()


@pytest.mark.django_db(transaction=True)
def test_runs_promote_only_a_better_metric(
    user, api, settings, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    settings.TENSORFLEET_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    receiver = start_receiver()
    try:
        api.post(
            "/api/v1/webhooks",
            {"url": receiver.url, "events": ["schedule.run_finished"], "secret": "x" * 16},
            format="json",
        )
        made = schedule(api)
        first = beat(made["id"], django_capture_on_commit_callbacks)
        assert first.status == "succeeded" and first.promoted and first.version == 1, first.detail
        assert champion() == 1 and first.previous_version is None

        # The same spec trains to the same metric (bit-identical reruns): not better, not moved.
        second = beat(made["id"], django_capture_on_commit_callbacks)
        assert second.status == "succeeded" and not second.promoted
        assert second.metric_value == first.metric_value == second.compared_to
        assert "does not beat" in second.detail and champion() == 1

        # A better recipe: registered as version 2 and the champion moves to it.
        api.patch(
            f"/api/v1/schedules/{made['id']}", {"spec": {**SPEC, "epochs": 5, "learning_rate": 0.02}}, format="json"
        )
        third = beat(made["id"], django_capture_on_commit_callbacks)
        assert third.promoted and third.version == 2 and third.previous_version == 1
        assert third.metric_value > third.compared_to == first.metric_value
        assert champion() == 2

        runs = api.get(f"/api/v1/schedules/{made['id']}/runs").data["results"]
        assert [(r["number"], r["promoted"]) for r in runs] == [(3, True), (2, False), (1, True)]
        assert all(Job.objects.get(id=r["job"]).name == f"nightly #{r['number']}" for r in runs)
        got = receiver.wait_for(3)
        assert [r.document["data"]["run"]["promoted"] for r in got] == [True, False, True]
        assert got[2].document["data"]["run"]["version"] == 2
    finally:
        receiver.server.shutdown()


@pytest.mark.django_db(transaction=True)
def test_a_failed_run_leaves_the_alias_and_fires_job_failed(
    user, api, settings, eager_celery, local_storage, django_capture_on_commit_callbacks, monkeypatch
):
    made = schedule(api)
    beat(made["id"], django_capture_on_commit_callbacks)
    assert champion() == 1
    settings.TENSORFLEET_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    receiver = start_receiver()
    try:
        api.post("/api/v1/webhooks", {"url": receiver.url, "events": ["job.failed"], "secret": "x" * 16}, format="json")
        monkeypatch.setattr("jobs.services.launch.job_launch", lambda job_id: None)  # it waits, queued
        waiting = beat(made["id"], django_capture_on_commit_callbacks)
        assert waiting.status == "running"
        overlapping = beat(made["id"], django_capture_on_commit_callbacks)
        assert overlapping.status == "skipped" and "still going" in overlapping.detail
        lifecycle.job_fail(job_id=waiting.job_id, reason="the worker's disk is full")
        waiting.refresh_from_db()
        assert waiting.status == "failed" and not waiting.promoted and waiting.finished_at
        assert champion() == 1
        (failed,) = receiver.wait_for(1)
        assert failed.event == "job.failed" and failed.document["data"]["job"]["id"] == str(waiting.job_id)
    finally:
        receiver.server.shutdown()


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_spec_no_longer_passes_is_refused(
    user, api, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    made = schedule(api, spec={**SPEC, "num_workers": 1})
    Schedule.objects.filter(id=made["id"]).update(spec={**SPEC, "dataset": "gone-dataset"})
    refused = beat(made["id"], django_capture_on_commit_callbacks)
    assert refused.status == "refused" and "gone-dataset" in refused.detail and refused.job is None


@pytest.mark.django_db
def test_schedule_input_is_checked_field_by_field(api, other_user):
    def post(**body):
        return api.post("/api/v1/schedules", {"name": "s", "cron": "* * * * *", "spec": SPEC, **body}, format="json")

    assert "5 fields" in post(cron="* * *").data["cron"][0]
    assert "61" in post(cron="61 * * * *").data["cron"][0]
    assert "model_type" in post(spec={**SPEC, "model_type": "cnn"}).data["spec"]
    assert "nonsense" in post(spec={**SPEC, "nonsense": 1}).data["spec"]
    assert "not a path" in post(spec={**SPEC, "dataset": "/data/x.csv"}).data["spec"]["dataset"][0]
    assert "alias" in post(promotion={**RULE, "alias": "latest"}).data["promotion"]
    assert "model" in post(promotion={**RULE, "model": "bad name"}).data["promotion"]
    assert "metric" in post(promotion={**RULE, "metric": "train_loss"}).data["promotion"]
    assert post().status_code == 201
    assert "already" in post().data["name"][0]

    made = api.get("/api/v1/schedules").data["results"][0]
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=other_user)}")
    for path in (f"/api/v1/schedules/{made['id']}", f"/api/v1/schedules/{made['id']}/runs"):
        assert stranger.get(path).status_code == 404
    assert stranger.post(f"/api/v1/schedules/{made['id']}/run").status_code == 404
    assert stranger.patch(f"/api/v1/schedules/{made['id']}", {"enabled": False}, format="json").status_code == 404
    assert stranger.delete(f"/api/v1/schedules/{made['id']}").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_run_now_starts_a_run_by_hand(api, monkeypatch):
    monkeypatch.setattr("jobs.services.launch.job_launch", lambda job_id: None)
    made = schedule(api, promotion=None)
    started = api.post(f"/api/v1/schedules/{made['id']}/run")
    assert started.status_code == 202 and started.data["trigger"] == "manual" and started.data["status"] == "running"
    assert Job.objects.get(id=started.data["job"]).status == Status.QUEUED
