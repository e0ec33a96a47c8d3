"""Datasets against a real S3 server: upload over HTTP, train on real workers,
content addressing, bad uploads leaving the bucket as it was, ownership, retention."""

from __future__ import annotations

import numpy as np
import pytest
import requests

from tensorfleet_site.access.services import token_create
from tests.datagen import blobs, npz_bytes, write_csv, write_idx_zip
from tests.factories import UserFactory

pytestmark = pytest.mark.integration


def upload(http_api, path_or_bytes, filename, **fields):
    data = path_or_bytes.read_bytes() if hasattr(path_or_bytes, "read_bytes") else path_or_bytes
    return http_api.session.post(http_api.base + "/datasets", files={"file": (filename, data)}, data=fields, timeout=60)


def test_csv_and_mnist_idx_datasets_train_on_workers(http_api, workers, s3_storage, tmp_path):
    x, y = blobs(900, 6, 4, seed=1)
    csv_path = write_csv(tmp_path / "blobs.csv", x, y, label="target")
    csv_ds = upload(http_api, csv_path, "blobs.csv", label_column="target")
    assert csv_ds.status_code == 201, csv_ds.text
    idx_ds = upload(http_api, write_idx_zip(tmp_path / "mnist.zip"), "mnist.zip", name="mnist")
    assert idx_ds.status_code == 201, idx_ds.text
    assert idx_ds.json()["input_shape"] == [1, 28, 28]

    keys_before = s3_storage.keys("datasets/")
    again = upload(http_api, csv_path, "blobs.csv", name="blobs-again", label_column="target")
    assert again.status_code == 201 and again.json()["sha256"] == csv_ds.json()["sha256"]
    assert s3_storage.keys("datasets/") == keys_before  # no second object

    jobs = [
        http_api.post(
            "/jobs", {"model_type": "mlp", "dataset": "blobs", "num_workers": 2, "epochs": 4, "keep_checkpoints": 1}
        ).json(),
        http_api.post(
            "/jobs", {"model_type": "cnn", "dataset": idx_ds.json()["id"], "num_workers": 2, "epochs": 3}
        ).json(),
    ]
    chance = {0: 1 / 4, 1: 1 / 10}
    for i, job in enumerate(jobs):
        done = http_api.wait_job(job["id"])
        assert done["status"] == "succeeded", done["error"]
        assert done["metrics"]["val_accuracy"] > chance[i] + 0.5, done["metrics"]

    # Retention with keep_checkpoints=1: the last epoch, the best epoch, the final checkpoint; nothing else in S3.
    job = jobs[0]
    metrics = http_api.get(f"/jobs/{job['id']}/metrics").json()
    best = max(metrics, key=lambda m: (m["val_accuracy"], -m["epoch"]))["epoch"]
    listed = http_api.get(f"/jobs/{job['id']}/checkpoints").json()
    kept = {c["epoch"] for c in listed if c["kind"] == "epoch"}
    assert kept == {4, best}
    expected = sorted(f"jobs/{job['id']}/checkpoints/epoch-{e:04d}.safetensors" for e in kept)
    expected.append(f"jobs/{job['id']}/checkpoints/final.safetensors")
    assert s3_storage.keys(f"jobs/{job['id']}/checkpoints/") == sorted(expected)
    # The presigned URL serves the same bytes straight from S3.
    final = next(c for c in listed if c["kind"] == "final")
    direct = requests.get(final["presigned_url"], timeout=30)
    assert direct.status_code == 200 and __import__("hashlib").sha256(direct.content).hexdigest() == final["sha256"]


def test_bad_uploads_leave_bucket_and_database_as_they_were(http_api, s3_storage, settings):
    from storage_app.models import Dataset

    before_keys, before_rows = s3_storage.keys(), Dataset.objects.count()
    cases = [
        (b"", "empty.csv", {}, 400),
        (b"a,b,label\n1,2,0\n3,4\n", "ragged.csv", {}, 400),
        (b"a,b,label\n1,zz,0\n3,4,1\n", "text.csv", {}, 400),
        (b"a,b,label\n1,2,1.5\n3,4,1\n", "frac.csv", {}, 400),
        (npz_bytes(X=np.zeros((6, 2)), y=np.zeros(5, dtype=int)), "lengths.npz", {}, 400),
    ]
    for data, name, fields, code in cases:
        r = upload(http_api, data, name, **fields)
        assert r.status_code == code, (name, r.text)
        assert "file" in r.json()
    settings.TENSORFLEET_MAX_DATASET_BYTES = 100
    big = upload(http_api, b"a,label\n" + b"1,0\n2,1\n" * 100, "big.csv")
    assert big.status_code == 413
    assert s3_storage.keys() == before_keys and Dataset.objects.count() == before_rows


def test_another_user_cannot_list_download_or_use_a_dataset(http_api, live_server, tmp_path):
    x, y = blobs(100, 3, 2)
    mine = upload(http_api, write_csv(tmp_path / "p.csv", x, y), "p.csv", name="private").json()
    other = requests.Session()
    other.headers["Authorization"] = f"Token {token_create(user=UserFactory())}"
    base = live_server.url + "/api/v1"
    assert other.get(base + "/datasets", timeout=10).json()["count"] == 0
    assert other.get(f"{base}/datasets/{mine['id']}/download", timeout=10).status_code == 404
    r = other.post(base + "/jobs", json={"model_type": "mlp", "dataset": mine["id"]}, timeout=10)
    assert r.status_code == 400 and "dataset" in r.json()
