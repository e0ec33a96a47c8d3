"""The jobs API: validation, ownership, authentication, listing."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from jobs.models import Job
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db

VALID = {"model_type": "cnn", "dataset": "digits", "num_workers": 2, "epochs": 10}


@pytest.fixture(autouse=True)
def no_enqueue(monkeypatch):
    """These tests check the API, not the queue: record launches instead of sending them."""
    launched = []
    monkeypatch.setattr("jobs.services.launch.job_launch", launched.append)
    return launched


def test_create_returns_the_queued_job(api, user, no_enqueue, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        r = api.post("/api/v1/jobs", VALID, format="json")
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["status"] == "queued"
    assert body["total_tasks"] == 20 and body["completed_tasks"] == 0 and body["progress"] == 0.0
    assert body["metrics"] == {"train_loss": None, "val_loss": None, "val_accuracy": None, "best_val_accuracy": None}
    for field in ("id", "current_epoch", "created_at", "started_at", "finished_at", "error"):
        assert field in body
    job = Job.objects.get(id=body["id"])
    assert job.owner == user and job.input_shape == [1, 8, 8] and job.num_classes == 10
    assert no_enqueue == [job.id]  # launched once the row was committed


@pytest.mark.parametrize("path", ["/api/v1/jobs", "/api/v1/jobs/"])
def test_create_works_with_and_without_trailing_slash(api, path):
    assert api.post(path, VALID, format="json").status_code == 201


def test_dataset_path_is_another_name_for_dataset(api):
    r = api.post("/api/v1/jobs", {"model_type": "mlp", "dataset_path": "iris"}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["dataset"] == "iris"


def test_defaults_fill_the_spec(api):
    body = api.post("/api/v1/jobs", {"model_type": "logreg", "dataset": "wine"}, format="json").json()
    assert (body["optimizer"], body["batch_size"], body["learning_rate"], body["seed"], body["queue"]) == (
        "adam",
        32,
        0.001,
        0,
        "cpu",
    )
    assert body["threads"] == 0  # not fixed yet: the first worker that trains a shard picks it from its own cores


def test_the_first_worker_fixes_the_thread_count_from_its_own_cores(user, eager_celery, local_storage, settings):
    """The API host's cores say nothing about a worker's: the worker picks, records it once,
    and every later task of the job trains with the recorded count."""
    from jobs.models import Job
    from jobs.services import lifecycle
    from jobs.specs import job_spec_validate

    settings.TENSORFLEET_THREADS_PER_SHARD = 1
    spec = job_spec_validate(owner=user, data={"model_type": "logreg", "dataset": "iris", "epochs": 1})
    job = lifecycle.job_create(owner=user, spec=spec)
    assert job.threads == 0
    assert lifecycle.job_threads_fix(job_id=job.id, threads=1) == 1
    assert lifecycle.job_threads_fix(job_id=job.id, threads=7) == 1  # recorded once
    assert Job.objects.get(id=job.id).threads == 1


@pytest.mark.parametrize(
    "change, field",
    [
        ({"model_type": "resnet"}, "model_type"),
        ({"dataset": "imagenet"}, "dataset"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 100000}, "epochs"),
        ({"num_workers": 0}, "num_workers"),
        ({"num_workers": 1000}, "num_workers"),
        ({"epochs": "ten"}, "epochs"),
        ({"learning_rate": -1}, "learning_rate"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"queue": "tpu"}, "queue"),
        ({"colour": "blue"}, "colour"),
        ({"dataset": "iris"}, "model_type"),  # cnn on a tabular dataset
        ({"dataset_size": 1000}, "dataset_size"),  # only synthetic takes a size
        ({"dataset_path": "wine"}, "dataset_path"),  # both names given
    ],
)
def test_bad_input_is_a_400_naming_the_field(api, change, field):
    before = Job.objects.count()
    r = api.post("/api/v1/jobs", {**VALID, **change}, format="json")
    assert r.status_code == 400, r.content
    assert field in r.json(), r.json()
    assert Job.objects.count() == before


def test_missing_required_fields_are_named(api):
    r = api.post("/api/v1/jobs", {}, format="json")
    assert r.status_code == 400
    assert set(r.json()) == {"model_type", "dataset"}


def test_a_non_object_body_is_a_400(api):
    r = api.post("/api/v1/jobs", [1, 2], format="json")
    assert r.status_code == 400


def test_no_credentials_is_401():
    r = APIClient().get("/api/v1/jobs")
    assert r.status_code == 401
    assert APIClient().post("/api/v1/jobs", VALID, format="json").status_code == 401


def test_another_users_job_is_404(api, other_user):
    theirs = JobFactory(owner=other_user)
    assert api.get(f"/api/v1/jobs/{theirs.id}").status_code == 404
    assert api.post(f"/api/v1/jobs/{theirs.id}/cancel").status_code == 404
    assert api.get(f"/api/v1/jobs/{theirs.id}/checkpoints").status_code == 404
    assert api.get("/api/v1/jobs").json()["count"] == 0


def test_list_is_newest_first_paginated_and_filtered(api, user):
    jobs = [JobFactory(owner=user) for _ in range(25)]
    jobs[0].status = "succeeded"
    jobs[0].save()
    page = api.get("/api/v1/jobs").json()
    assert page["count"] == 25 and len(page["results"]) == 20 and page["next"]
    assert page["results"][0]["id"] == str(jobs[-1].id)
    only = api.get("/api/v1/jobs", {"status": "succeeded"}).json()
    assert [j["id"] for j in only["results"]] == [str(jobs[0].id)]
    assert api.get("/api/v1/jobs", {"status": "sleeping"}).status_code == 400


def test_cancel_a_queued_job_then_again_is_409(api, user):
    job = JobFactory(owner=user)
    r = api.post(f"/api/v1/jobs/{job.id}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    again = api.post(f"/api/v1/jobs/{job.id}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["status"][0]


def test_schema_and_docs_are_served(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/v1/jobs" in schema.json()["paths"] or "/api/v1/jobs/" in str(schema.json()["paths"])
    assert api.get("/api/docs/").status_code == 200


def test_browsable_api_renders(api):
    r = api.get("/api/v1/jobs", HTTP_ACCEPT="text/html")
    assert r.status_code == 200 and b"<html" in r.content


def test_health_needs_no_login():
    assert APIClient().get("/api/v1/health").json() == {"status": "ok"}
