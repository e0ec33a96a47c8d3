"""Data as users have it, on real workers and S3: an image-folder zip, a CSV whose labels
are names and a Parquet file, uploaded over HTTP and trained on two worker processes,
their class names in the job, in its checkpoint, and predicting as recorded."""

from __future__ import annotations

import hashlib
import io
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.datasets import load_wine

from storage_app.formats import load_file
from tests.imagegen import SHAPES, shape_files, zip_of
from tests.test_tabular_formats import SPECIES, iris_csv
from workers.splits import split_fraction
from workers.weights import checkpoint_class_names, load_checkpoint

pytestmark = pytest.mark.integration


def upload(http_api, data: bytes, filename: str, **fields):
    return http_api.session.post(
        http_api.base + "/datasets", files={"file": (filename, data)}, data=fields, timeout=120
    )


def final_checkpoint(http_api, job_id: str) -> tuple[dict, bytes]:
    checkpoints = http_api.get(f"/jobs/{job_id}/checkpoints").json()
    final = next(c for c in checkpoints if c["kind"] == "final")
    data = http_api.session.get(final["download_url"], timeout=60).content
    assert hashlib.sha256(data).hexdigest() == final["sha256"]
    return final, data


def validation_accuracy(model, x: np.ndarray, y: np.ndarray, seed: int) -> float:
    """The job's 20% held out by its seed, predicted by the checkpoint."""
    g = torch.Generator().manual_seed(seed)
    split = split_fraction(torch.from_numpy(x), torch.from_numpy(y), g, standardise=False)
    with torch.no_grad():
        return (model(split.x_val).argmax(1) == split.y_val).float().mean().item()


def test_an_image_folder_zip_trains_a_cnn_on_two_shards(http_api, workers, s3_storage, tmp_path):
    started = time.monotonic()
    archive = zip_of(shape_files(400, seed=0, root="shapes/"))  # 1,200 rendered 32x32 PNGs, three classes
    created = upload(http_api, archive, "shapes.zip")
    assert created.status_code == 201, created.text
    dataset = created.json()
    assert (dataset["format"], dataset["input_shape"], dataset["num_samples"]) == ("images", [3, 32, 32], 1200)
    assert dataset["class_names"] == sorted(SHAPES)
    key = f"datasets/{dataset['sha256'][:2]}/{dataset['sha256']}.npz"
    assert key in s3_storage.keys("datasets/")  # the decoded NPZ, in the bucket
    upload_s = time.monotonic() - started

    spec = {"model_type": "cnn", "dataset": "shapes", "num_workers": 2, "epochs": 6, "seed": 5, "keep_checkpoints": 1}
    job = http_api.post("/jobs", spec).json()
    done = http_api.wait_job(job["id"], timeout=600)
    assert done["status"] == "succeeded", done["error"]
    accuracy = done["metrics"]["val_accuracy"]
    assert accuracy >= 0.9, done["metrics"]  # chance is 1/3
    assert done["class_names"] == sorted(SHAPES)
    tasks = http_api.get(f"/jobs/{job['id']}/tasks", params={"page_size": 100}).json()["results"]
    assert {t["worker"] for t in tasks} == {w.hostname for w in workers}  # both processes trained

    final, data = final_checkpoint(http_api, job["id"])
    assert checkpoint_class_names(data) == sorted(SHAPES)
    npz = tmp_path / "shapes.npz"
    npz.write_bytes(http_api.session.get(dataset["download_url"], timeout=60).content)
    x, y = load_file(npz, "images")
    assert validation_accuracy(load_checkpoint(data), x, y, seed=5) == pytest.approx(accuracy)
    print(
        f"\nimage folders: upload+decode {upload_s:.1f} s, job {done['started_at']} -> {done['finished_at']}, "
        f"val_accuracy {accuracy:.4f}, final sha256 {final['sha256']}"
    )


def wine_parquet() -> bytes:
    wine = load_wine()
    columns = {name: wine.data[:, i] for i, name in enumerate(wine.feature_names)}
    names = [str(wine.target_names[t]) for t in wine.target]
    buf = io.BytesIO()
    pq.write_table(pa.table({**columns, "cultivar": names}), buf, row_group_size=50)
    return buf.getvalue()


def test_a_csv_of_names_and_a_parquet_file_train_on_two_shards(http_api, workers, s3_storage):
    csv_ds = upload(http_api, iris_csv(), "flowers.csv", label_column="species")
    assert csv_ds.status_code == 201, csv_ds.text
    pq_ds = upload(http_api, wine_parquet(), "vineyards.parquet", label_column="cultivar")
    assert pq_ds.status_code == 201, pq_ds.text
    wine_names = sorted(str(n) for n in load_wine().target_names)
    assert (pq_ds.json()["format"], pq_ds.json()["class_names"]) == ("parquet", wine_names)
    assert f"datasets/{pq_ds.json()['sha256'][:2]}/{pq_ds.json()['sha256']}.parquet" in s3_storage.keys("datasets/")

    base = {"model_type": "mlp", "num_workers": 2, "epochs": 8, "learning_rate": 0.01, "seed": 2}
    jobs = {
        "flowers": (http_api.post("/jobs", {**base, "dataset": "flowers"}).json(), SPECIES),
        "vineyards": (http_api.post("/jobs", {**base, "dataset": "vineyards"}).json(), wine_names),
    }
    for name, (job, names) in jobs.items():
        done = http_api.wait_job(job["id"], timeout=300)
        assert done["status"] == "succeeded", (name, done["error"])
        assert done["class_names"] == names
        assert done["metrics"]["val_accuracy"] >= 0.85, (name, done["metrics"])
        _, data = final_checkpoint(http_api, job["id"])
        assert checkpoint_class_names(data) == names
        print(f"\n{name}: val_accuracy {done['metrics']['val_accuracy']:.4f}, class names {names}")
