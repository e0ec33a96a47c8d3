"""Datasets API with local storage: upload, content addressing, ownership, limits."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rest_framework.test import APIClient

from jobs.models import Job
from storage_app.models import Dataset
from tensorfleet_site.access.services import token_create
from tests.datagen import blobs, npz_bytes, write_csv, write_idx_folder

pytestmark = pytest.mark.django_db


def stored_files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.fixture
def csv_bytes(tmp_path):
    x, y = blobs(300, 4, 3)
    return write_csv(tmp_path / "blobs.csv", x, y).read_bytes()


def upload(api, data: bytes, filename: str = "blobs.csv", **fields):
    return api.post(
        "/api/v1/datasets",
        {"file": io.BytesIO(data) if data is not None else None, **fields}
        | ({} if data is None else {"file": _named(data, filename)}),
        format="multipart",
    )


def _named(data: bytes, filename: str):
    f = io.BytesIO(data)
    f.name = filename
    return f


def test_upload_csv_reads_its_shape(api, local_storage, csv_bytes):
    r = upload(api, csv_bytes, name="blobs")
    assert r.status_code == 201, r.content
    body = r.json()
    assert (body["format"], body["num_samples"], body["input_shape"], body["num_classes"]) == ("csv", 300, [4], 3)
    assert stored_files(local_storage) == [f"datasets/{body['sha256'][:2]}/{body['sha256']}.csv"]
    got = api.get(body["download_url"])
    assert b"".join(got.streaming_content) == csv_bytes


def test_same_bytes_twice_store_one_object(api, user, local_storage, csv_bytes):
    assert upload(api, csv_bytes, name="a").status_code == 201
    assert upload(api, csv_bytes, name="b").status_code == 201
    assert len(stored_files(local_storage)) == 1
    assert Dataset.objects.filter(owner=user).count() == 2
    again = upload(api, csv_bytes, name="a")  # a name taken: its next version, the same object
    assert again.status_code == 201 and again.data["version"] == 2
    assert len(stored_files(local_storage)) == 1


@pytest.mark.parametrize(
    "payload, filename, fields, field",
    [
        (b"", "empty.csv", {}, "file"),
        (b"a,b,label\n1,2,0\n3,x,1\n", "bad.csv", {}, "file"),
        (b"a,b,label\n1,2,0.5\n3,4,1\n", "frac.csv", {}, "file"),
        (npz_bytes(X=np.zeros((5, 2)), y=np.zeros(4, dtype=int)), "d.npz", {}, "file"),
        (b"1,2,3", "data.bin", {}, "format"),
        (b"a,label\n1,0\n2,1\n", "x.csv", {"name": "digits"}, "name"),
        (b"a,label\n1,0\n2,1\n", "x.csv", {"colour": "red"}, "colour"),
    ],
)
def test_bad_uploads_are_400_and_leave_nothing(api, local_storage, payload, filename, fields, field):
    r = upload(api, payload, filename, **fields)
    assert r.status_code == 400, r.content
    assert field in r.json()
    assert stored_files(local_storage) == [] and Dataset.objects.count() == 0


def test_too_large_is_413_and_leaves_nothing(api, local_storage, settings, csv_bytes):
    settings.TENSORFLEET_MAX_DATASET_BYTES = 1000
    r = upload(api, csv_bytes)
    assert r.status_code == 413 and "limit" in r.json()["file"][0]
    assert stored_files(local_storage) == [] and Dataset.objects.count() == 0


def test_other_users_cannot_see_download_or_use_it(api, other_user, local_storage, csv_bytes):
    mine = upload(api, csv_bytes, name="private").json()
    theirs = APIClient()
    theirs.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=other_user)}")
    assert theirs.get("/api/v1/datasets").json()["count"] == 0
    assert theirs.get(f"/api/v1/datasets/{mine['id']}").status_code == 404
    assert theirs.get(f"/api/v1/datasets/{mine['id']}/download").status_code == 404
    assert theirs.delete(f"/api/v1/datasets/{mine['id']}").status_code == 404
    for ref in (mine["id"], "private"):
        r = theirs.post("/api/v1/jobs", {"model_type": "mlp", "dataset": ref}, format="json")
        assert r.status_code == 400 and "dataset" in r.json()


def test_job_on_an_uploaded_dataset_records_it(api, local_storage, csv_bytes, monkeypatch):
    monkeypatch.setattr("jobs.services.launch.job_launch", lambda job_id: None)
    ds = upload(api, csv_bytes, name="blobs").json()
    for ref in ("blobs", ds["id"]):
        r = api.post("/api/v1/jobs", {"model_type": "mlp", "dataset": ref}, format="json")
        assert r.status_code == 201, r.content
        assert (r.json()["dataset"], r.json()["dataset_id"], r.json()["dataset_sha256"]) == (
            "blobs",
            ds["id"],
            ds["sha256"],
        )
        assert r.json()["input_shape"] == [4] and r.json()["num_classes"] == 3
    cnn = api.post("/api/v1/jobs", {"model_type": "cnn", "dataset": "blobs"}, format="json")
    assert cnn.status_code == 400 and "model_type" in cnn.json()


def test_delete_is_refused_while_a_job_uses_it(
    api, local_storage, csv_bytes, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr("jobs.services.launch.job_launch", lambda job_id: None)
    ds = upload(api, csv_bytes, name="blobs").json()
    job = api.post("/api/v1/jobs", {"model_type": "mlp", "dataset": "blobs"}, format="json").json()
    assert api.delete(f"/api/v1/datasets/{ds['id']}").status_code == 409
    Job.objects.filter(id=job["id"]).update(status="succeeded")
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/v1/datasets/{ds['id']}").status_code == 204
    assert stored_files(local_storage) == []


def test_dataset_path_imports_a_local_mnist_folder(api, local_storage, settings, tmp_path, monkeypatch):
    monkeypatch.setattr("jobs.services.launch.job_launch", lambda job_id: None)
    settings.TENSORFLEET_DATASET_IMPORT_ROOTS = [str(tmp_path / "data")]
    write_idx_folder(tmp_path / "data" / "mnist")
    r = api.post("/api/v1/jobs", {"model_type": "cnn", "dataset_path": str(tmp_path / "data" / "mnist")}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["input_shape"] == [1, 28, 28] and r.json()["num_classes"] == 10
    again = api.post(
        "/api/v1/jobs", {"model_type": "cnn", "dataset_path": str(tmp_path / "data" / "mnist")}, format="json"
    )
    assert again.json()["dataset_id"] == r.json()["dataset_id"]  # imported once
    outside = api.post("/api/v1/jobs", {"model_type": "mlp", "dataset_path": "/etc/passwd"}, format="json")
    assert outside.status_code == 400 and "outside the folders" in outside.json()["dataset"][0]
