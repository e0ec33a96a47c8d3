"""The model registry: versions from a job's checkpoints, aliases, downloads, owner-only,
and a version's file outliving the job's retention and the job itself."""

from __future__ import annotations

import hashlib

import pytest
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.core.management.base import CommandError
from rest_framework.test import APIClient

from jobs.models import Job, Status
from jobs.registry import services
from jobs.registry.models import ModelVersion, RegisteredModel, VersionFile
from jobs.services import lifecycle
from storage_app.models import Checkpoint
from storage_app.services import checkpoints_prune
from tensorfleet_site.access.services import token_create
from tests.registry_helpers import finished_job

SPEC = dict(
    model_type="mlp",
    dataset="iris",
    num_workers=2,
    epochs=4,
    batch_size=16,
    optimizer="adam",
    momentum=0.0,
    seed=3,
    queue="cpu",
    threads=1,
    keep_checkpoints=10,
)


def train(user, capture, **overrides) -> Job:
    with capture(execute=True):
        job = lifecycle.job_create(owner=user, spec={**SPEC, **overrides})
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED, job.error
    return job


def body_sha(response) -> str:
    return hashlib.sha256(b"".join(response.streaming_content)).hexdigest()


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=user)}")
    return client


@pytest.mark.django_db(transaction=True)
def test_champion_moves_from_version_1_to_a_better_jobs_version_2(
    user, other_user, api, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    weak = train(user, django_capture_on_commit_callbacks, name="weak", learning_rate=0.0005, epochs=2)
    strong = train(user, django_capture_on_commit_callbacks, name="strong", learning_rate=0.02)
    assert strong.best_val_accuracy > weak.best_val_accuracy

    assert (
        api.post("/api/v1/models", {"name": "iris-classifier", "description": "iris"}, format="json").status_code == 201
    )
    first = api.post("/api/v1/models/iris-classifier/versions", {"job": str(weak.id)}, format="json")
    assert first.status_code == 201, first.data
    second = api.post("/api/v1/models/iris-classifier/versions", {"job": str(strong.id)}, format="json")
    assert (first.data["version"], second.data["version"]) == (1, 2)
    best = strong.checkpoints.filter(val_accuracy=strong.best_val_accuracy).order_by("epoch").first()
    assert second.data["sha256"] == best.sha256 == second.data["checkpoint"]["sha256"]
    assert second.data["checkpoint"] == {"source": "best", "epoch": best.epoch, "sha256": best.sha256}
    assert second.data["metrics"]["val_accuracy"] == pytest.approx(strong.best_val_accuracy)
    assert second.data["job"] == str(strong.id) and second.data["job_spec"]["learning_rate"] == 0.02
    assert second.data["dataset"]["name"] == "iris"
    assert second.data["model_config"]["model_type"] == "mlp"

    moved = api.put("/api/v1/models/iris-classifier/aliases/champion", {"version": 1}, format="json")
    assert moved.status_code == 200 and moved.data["version"] == 1
    moved = api.put("/api/v1/models/iris-classifier/aliases/champion", {"version": 2}, format="json")
    assert moved.data["version"] == 2
    download = api.get("/api/v1/models/iris-classifier/aliases/champion/download")
    assert download.status_code == 200
    assert body_sha(download) == download["X-Checksum-SHA256"] == second.data["sha256"]
    assert download["X-TensorFleet-Model-Version"] == "2"
    by_number = api.get("/api/v1/models/iris-classifier/versions/1/download")
    assert body_sha(by_number) == first.data["sha256"] != second.data["sha256"]
    detail = api.get("/api/v1/models/iris-classifier").data
    assert detail["aliases"] == {"champion": 2} and detail["latest_version"] == 2
    assert [v["aliases"] for v in detail["versions"]] == [[], ["champion"]]

    # Another user: 404 for all of it, reads and writes, whatever the path below the model.
    stranger = client_for(other_user)
    for path in (
        "/api/v1/models/iris-classifier",
        "/api/v1/models/iris-classifier/versions",
        "/api/v1/models/iris-classifier/versions/2",
        "/api/v1/models/iris-classifier/versions/2/download",
        "/api/v1/models/iris-classifier/aliases",
        "/api/v1/models/iris-classifier/aliases/champion",
        "/api/v1/models/iris-classifier/aliases/champion/download",
    ):
        assert stranger.get(path).status_code == 404, path
    assert (
        stranger.put("/api/v1/models/iris-classifier/aliases/champion", {"version": 1}, format="json").status_code
        == 404
    )
    assert (
        stranger.post("/api/v1/models/iris-classifier/versions", {"job": str(strong.id)}, format="json").status_code
        == 404
    )
    assert stranger.delete("/api/v1/models/iris-classifier/versions/1").status_code == 404
    assert stranger.delete("/api/v1/models/iris-classifier").status_code == 404
    assert stranger.get("/api/v1/models").data["count"] == 0
    # Nor can they register someone else's job into a model of their own.
    stranger.post("/api/v1/models", {"name": "mine"}, format="json")
    refused = stranger.post("/api/v1/models/mine/versions", {"job": str(strong.id)}, format="json")
    assert refused.status_code == 400 and "job" in refused.data
    assert api.get("/api/v1/models/iris-classifier/aliases/champion").data["version"] == 2


@pytest.mark.django_db(transaction=True)
def test_a_versions_file_outlives_retention_and_the_job(user, api, local_storage):
    job = finished_job(user)
    api.post("/api/v1/models", {"name": "m"}, format="json")
    made = api.post("/api/v1/models/m/versions", {"job": str(job.id), "checkpoint": "epoch", "epoch": 1}, format="json")
    assert made.status_code == 201, made.data
    sha = hashlib.sha256(f"{job.id}-1".encode()).hexdigest()
    assert made.data["sha256"] == sha

    Job.objects.filter(id=job.id).update(keep_checkpoints=0)
    job.refresh_from_db()
    assert 1 in checkpoints_prune(job=job)  # retention drops epoch 1 (not the best, not the last)
    assert not Checkpoint.objects.filter(job=job, epoch=1).exists()
    assert body_sha(api.get("/api/v1/models/m/versions/1/download")) == sha

    with pytest.raises(Exception):  # noqa: B017 - nothing left to register
        services.version_create(model=RegisteredModel.objects.get(name="m"), job=job, source="epoch", epoch=1)
    lifecycle.job_delete(job=job)
    assert not [p for p in (local_storage / "jobs" / str(job.id)).rglob("*") if p.is_file()]
    assert body_sha(api.get("/api/v1/models/m/versions/1/download")) == sha
    version = api.get("/api/v1/models/m/versions/1").data
    assert version["job"] == str(job.id) and version["job_exists"] is False


@pytest.mark.django_db(transaction=True)
def test_the_last_version_holding_a_file_takes_it_along(user, api, local_storage):
    job = finished_job(user)
    for name in ("a", "b"):
        api.post("/api/v1/models", {"name": name}, format="json")
        assert api.post(f"/api/v1/models/{name}/versions", {"job": str(job.id)}, format="json").status_code == 201
    held = VersionFile.objects.get()  # the best checkpoint (epoch 2), once for both versions
    assert held.sha256 == hashlib.sha256(f"{job.id}-2".encode()).hexdigest()
    assert default_storage.exists(held.file.name) and held.file.name.startswith("registry/")

    assert api.delete("/api/v1/models/a/versions/1").status_code == 204
    assert default_storage.exists(held.file.name)
    assert api.delete("/api/v1/models/b").status_code == 204
    assert not default_storage.exists(held.file.name)
    assert not VersionFile.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_registry_refusals_are_field_level(user, api, local_storage):
    job = finished_job(user)
    assert api.post("/api/v1/models", {"name": "bad name"}, format="json").data["name"]
    api.post("/api/v1/models", {"name": "m"}, format="json")
    assert api.post("/api/v1/models", {"name": "m"}, format="json").status_code == 409
    post = lambda body: api.post("/api/v1/models/m/versions", body, format="json")  # noqa: E731
    assert "job" in post({"job": "not-a-uuid"}).data
    assert "epoch" in post({"job": str(job.id), "checkpoint": "epoch"}).data
    assert "checkpoint" in post({"job": str(job.id), "checkpoint": "epoch", "epoch": 9}).data
    assert "nonsense" in post({"job": str(job.id), "nonsense": 1}).data
    assert post({"job": str(job.id), "checkpoint": "final"}).data["checkpoint"]["source"] == "final"
    put = lambda alias, body: api.put(f"/api/v1/models/m/aliases/{alias}", body, format="json")  # noqa: E731
    assert put("champion", {"version": 7}).data == {"version": ["m has no version 7"]}
    assert "alias" in put("latest", {"version": 1}).data and "alias" in put("v2", {"version": 1}).data
    assert put("champion", {"version": 1}).status_code == 200
    refused = api.delete("/api/v1/models/m/versions/1")
    assert refused.status_code == 409 and "champion" in refused.data["version"][0]
    assert api.delete("/api/v1/models/m/aliases/champion").status_code == 204
    assert api.delete("/api/v1/models/m/aliases/champion").status_code == 404
    assert api.delete("/api/v1/models/m/versions/1").status_code == 204
    # Numbers are never given twice.
    assert post({"job": str(job.id)}).data["version"] == 2


@pytest.mark.django_db(transaction=True)
def test_register_model_and_set_alias_commands(user, local_storage, capsys):
    job = finished_job(user)
    call_command("register_model", "cmd-model", "--job", str(job.id), "--alias", "staging")
    call_command("register_model", "cmd-model", "--job", str(job.id), "--checkpoint", "epoch", "--epoch", "1")
    call_command("set_alias", "cmd-model", "champion", "2", "--owner", user.username)
    out = capsys.readouterr().out
    assert "registered cmd-model version 1" in out and "staging -> 1" in out and "champion -> version 2 (new)" in out
    versions = ModelVersion.objects.filter(model__name="cmd-model").order_by("version")
    assert [v.checkpoint_epoch for v in versions] == [2, 1]
    with pytest.raises(CommandError, match="no version 9"):
        call_command("set_alias", "cmd-model", "champion", "9", "--owner", user.username)
    with pytest.raises(CommandError, match="no job"):
        call_command("register_model", "cmd-model", "--job", "00000000-0000-0000-0000-000000000000")
