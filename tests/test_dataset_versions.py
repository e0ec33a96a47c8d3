"""Dataset versions: an upload under a taken name is the next version, a job takes the
newest at submission (``name@3`` pins one) and records which, and a schedule's runs
each train on the newest version of their dataset."""

from __future__ import annotations

import io

import pytest

from jobs.models import Job
from jobs.registry.models import ModelAlias
from jobs.schedules import tasks
from jobs.schedules.models import ScheduleRun
from storage_app.models import Dataset
from tests.registry_helpers import noisy


def upload(api, data: bytes, name: str):
    file = io.BytesIO(data)
    file.name = "data.csv"
    return api.post("/api/v1/datasets", {"file": file, "name": name}, format="multipart")


def submit(api, dataset: str):
    spec = {"model_type": "logreg", "dataset": dataset, "epochs": 1, "num_workers": 1}
    return api.post("/api/v1/jobs", spec, format="json")


@pytest.mark.django_db(transaction=True)
def test_uploads_under_one_name_are_versions_and_jobs_take_the_newest(api, user, local_storage, monkeypatch):
    monkeypatch.setattr("jobs.services.launch.job_launch", lambda job_id: None)  # not trained here
    first = upload(api, noisy(1, 0.5), "churn")
    second = upload(api, noisy(1, 0.0), "churn")
    third = upload(api, noisy(1, 0.0), "churn")  # the same bytes again: a version, not a second object
    assert [r.status_code for r in (first, second, third)] == [201, 201, 201]
    assert [r.data["version"] for r in (first, second, third)] == [1, 2, 3]
    assert second.data["sha256"] == third.data["sha256"] != first.data["sha256"]
    stored = sorted(p.name for p in (local_storage / "datasets").rglob("*") if p.is_file())
    assert len(stored) == 2

    newest = submit(api, "churn")
    assert newest.status_code == 201, newest.data
    assert (newest.data["dataset_version"], newest.data["dataset_id"]) == (3, third.data["id"])
    pinned = submit(api, "churn@1")
    assert (pinned.data["dataset_version"], pinned.data["dataset_sha256"]) == (1, first.data["sha256"])
    assert pinned.data["dataset"] == "churn"
    missing = submit(api, "churn@9")
    assert missing.status_code == 400 and missing.data["dataset"] == ["'churn' has no version 9; it has 1, 2, 3"]
    assert submit(api, first.data["id"]).data["dataset_version"] == 1  # by id: that version
    refused = upload(api, noisy(1, 0.0), "churn@4")
    assert refused.status_code == 400 and "names version" in refused.data["name"][0]

    # Deleting a version keeps the others (and the object the others share).
    Job.objects.all().delete()
    assert api.delete(f"/api/v1/datasets/{second.data['id']}").status_code == 204
    assert len([p for p in (local_storage / "datasets").rglob("*") if p.is_file()]) == 2
    assert submit(api, "churn").data["dataset_version"] == 3
    assert sorted(Dataset.objects.filter(owner=user, name="churn").values_list("version", flat=True)) == [1, 3]


@pytest.mark.django_db(transaction=True)
def test_each_scheduled_run_trains_on_the_newest_upload_and_promotes_only_a_better_one(
    api, user, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    assert upload(api, noisy(1, 0.6), "churn").status_code == 201
    spec = {
        "model_type": "mlp",
        "dataset": "churn",
        "epochs": 4,
        "num_workers": 2,
        "learning_rate": 0.02,
        "seed": 5,
        "threads": 1,
    }
    rule = {"model": "churn-model", "alias": "champion", "metric": "val_accuracy"}
    made = api.post(
        "/api/v1/schedules", {"name": "hourly", "cron": "* * * * *", "spec": spec, "promotion": rule}, format="json"
    )
    assert made.status_code == 201, made.data

    def beat() -> ScheduleRun:
        with django_capture_on_commit_callbacks(execute=True):
            tasks.run(made.data["id"])
        return ScheduleRun.objects.order_by("-number").first()

    def champion() -> int:
        return ModelAlias.objects.get(model__name="churn-model", name="champion").version.version

    first = beat()  # version 1 of the data: labels 60% noise
    assert (first.dataset_version, first.promoted, first.version) == (1, True, 1), first.detail
    assert champion() == 1

    upload(api, noisy(1, 0.0), "churn")  # version 2: clean labels
    second = beat()
    assert second.dataset_version == 2 and second.status == "succeeded"
    assert second.metric_value > first.metric_value == second.compared_to
    assert (second.promoted, second.version, champion()) == (True, 2, 2)

    upload(api, noisy(1, 0.4), "churn")  # version 3: noisier again
    third = beat()
    assert third.dataset_version == 3 and third.status == "succeeded"
    assert third.metric_value < second.metric_value == third.compared_to
    assert not third.promoted and third.version is None and champion() == 2
    assert Job.objects.get(id=third.job_id).dataset_version == 3

    lineage = api.get("/api/v1/models/churn-model/versions/2").data
    assert lineage["dataset"]["version"] == 2 and lineage["dataset"]["name"] == "churn"
    print(
        "schedule runs:",
        [(r.number, r.dataset_version, round(r.metric_value, 4), r.promoted) for r in (first, second, third)],
    )
