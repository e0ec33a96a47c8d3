"""Per-user quotas: a request over one is a 429 naming the quota and the current use (a
400 when the request alone could never fit); overrides per user; sweeps wait for room."""

from __future__ import annotations

import pytest

from jobs.models import Job, Status
from storage_app.models import Checkpoint
from tensorfleet_site.quotas.models import Quota
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db

SPEC = {"model_type": "logreg", "dataset": "iris", "epochs": 1}


@pytest.fixture(autouse=True)
def no_enqueue(monkeypatch):
    launched = []
    monkeypatch.setattr("jobs.services.launch.job_launch", launched.append)
    monkeypatch.setattr("jobs.services.launch.epoch_launch", lambda job_id, epoch: launched.append((job_id, epoch)))
    monkeypatch.setattr("jobs.orchestration.revoke", lambda ids: None)
    return launched


def test_active_jobs_over_the_quota_get_429_with_the_current_use(api, user, settings):
    settings.TENSORFLEET_QUOTA_ACTIVE_JOBS = 2
    assert api.post("/api/v1/jobs", SPEC, format="json").status_code == 201
    assert api.post("/api/v1/jobs", SPEC, format="json").status_code == 201
    r = api.post("/api/v1/jobs", SPEC, format="json")
    assert r.status_code == 429, r.content
    assert r.json()["quota"] == {"quota": "active_jobs", "limit": 2, "used": 2, "asked": 1}
    assert r.json()["detail"] == ["over the active_jobs quota: 2 in use, 1 more asked, the limit is 2."]
    assert Job.objects.count() == 2  # nothing stored for the refused one
    Job.objects.filter(owner=user).update(status=Status.SUCCEEDED)
    assert api.post("/api/v1/jobs", SPEC, format="json").status_code == 201  # finished jobs free the room


def test_shards_in_flight_count_every_active_job(api, settings):
    settings.TENSORFLEET_QUOTA_SHARDS_IN_FLIGHT = 6
    assert api.post("/api/v1/jobs", {**SPEC, "num_workers": 4}, format="json").status_code == 201
    r = api.post("/api/v1/jobs", {**SPEC, "num_workers": 4}, format="json")
    assert r.status_code == 429 and r.json()["quota"]["used"] == 4 and "num_workers" in r.json()


def test_a_spec_that_could_never_fit_is_a_400(api, settings):
    settings.TENSORFLEET_QUOTA_SHARDS_IN_FLIGHT = 3
    r = api.post("/api/v1/jobs", {**SPEC, "num_workers": 4}, format="json")
    assert r.status_code == 400 and "num_workers" in r.json()
    settings.TENSORFLEET_QUOTA_CHECKPOINTS_PER_JOB = 5
    r = api.post("/api/v1/jobs", {**SPEC, "keep_checkpoints": 6}, format="json")
    assert r.status_code == 400 and "keep_checkpoints" in r.json()


def test_a_per_user_override_beats_the_default(api, user, other_user, settings):
    settings.TENSORFLEET_QUOTA_ACTIVE_JOBS = 1
    Quota.objects.create(user=user, active_jobs=3)
    for _ in range(3):
        assert api.post("/api/v1/jobs", SPEC, format="json").status_code == 201
    assert api.post("/api/v1/jobs", SPEC, format="json").status_code == 429
    JobFactory(owner=other_user, status=Status.RUNNING)
    from jobs.services import lifecycle
    from jobs.specs import job_spec_validate
    from tensorfleet_site.quotas.limits import QuotaExceeded

    with pytest.raises(QuotaExceeded):  # the other user keeps the default of 1
        lifecycle.job_create(owner=other_user, spec=job_spec_validate(owner=other_user, data=SPEC))


def test_stored_bytes_over_the_quota_refuse_new_jobs(api, user, settings):
    settings.TENSORFLEET_QUOTA_STORED_BYTES = 1000
    job = JobFactory(owner=user, status=Status.SUCCEEDED)
    Checkpoint.objects.create(job=job, epoch=1, file="x", sha256="0" * 64, size=1001)
    r = api.post("/api/v1/jobs", SPEC, format="json")
    assert r.status_code == 429 and r.json()["quota"]["quota"] == "stored_bytes" and r.json()["quota"]["used"] == 1001


SWEEP = {
    "base": {"model_type": "mlp", "dataset": "digits", "epochs": 2},
    "space": {"learning_rate": {"choice": [0.1, 0.01, 0.001, 0.0001]}},
    "search": "grid",
    "max_concurrent": 4,
}


def test_a_sweep_over_the_trials_quota_is_a_400(api, settings):
    settings.TENSORFLEET_QUOTA_SWEEP_TRIALS = 3
    r = api.post("/api/v1/sweeps", SWEEP, format="json")
    assert r.status_code == 400 and "trials" in r.json(), r.content


def test_a_sweep_waits_for_room_instead_of_failing(api, user, settings, django_capture_on_commit_callbacks):
    settings.TENSORFLEET_QUOTA_ACTIVE_JOBS = 2
    r = api.post("/api/v1/sweeps", SWEEP, format="json")
    assert r.status_code == 201, r.content
    sweep = r.json()
    assert sweep["status"] == "running" and Job.objects.filter(sweep_id=sweep["id"]).count() == 2
    first = Job.objects.filter(sweep_id=sweep["id"]).order_by("trial_number").first()
    api.post(f"/api/v1/jobs/{first.id}/cancel")  # a slot frees: the next trial starts
    trials = Job.objects.filter(sweep_id=sweep["id"]).order_by("trial_number")
    assert [t.trial_number for t in trials] == [1, 2, 3]


def test_an_upload_over_the_stored_bytes_quota_is_refused_and_stores_nothing(api, user, settings, local_storage):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from storage_app.models import Dataset

    rows = "a,b,label\n" + "".join(f"{i % 7}.5,{i % 3}.25,{i % 2}\n" for i in range(200))
    data = rows.encode()
    settings.TENSORFLEET_QUOTA_STORED_BYTES = len(data) * 2 - 1

    def send(name):
        return api.post("/api/v1/datasets", {"file": SimpleUploadedFile(f"{name}.csv", data), "name": name})

    assert send("first").status_code == 201
    r = send("second")
    assert r.status_code == 429, r.content
    assert r.json()["quota"] == {
        "quota": "stored_bytes",
        "limit": len(data) * 2 - 1,
        "used": len(data),
        "asked": len(data),
    }
    assert Dataset.objects.filter(owner=user).count() == 1
    settings.TENSORFLEET_QUOTA_STORED_BYTES = len(data) - 1
    assert send("third").status_code == 400  # alone over the limit: waiting will not help
