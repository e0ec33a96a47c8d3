"""String labels (a CSV or Parquet label column of names, mapped to indices in sorted
order) and Parquet files: read, refused with the reason, bounded from the footer before
a page is read, and a job on them carrying its class names to the API and the checkpoint."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_iris

from storage_app.blobs import blob_read
from storage_app.formats import DatasetFormatError, DatasetTooLarge, inspect_file, load_file
from storage_app.formats.labels import MAX_NAME_CHARS
from storage_app.models import Dataset
from tests.test_upload_hardening import LIMIT, MiB, assert_refused, stored, traced_peak_mib, upload
from workers.weights import checkpoint_class_names, load_checkpoint

SPECIES = ["setosa", "versicolor", "virginica"]


def iris_csv(label: str = "species", order=None) -> bytes:
    iris = load_iris()
    rows = order if order is not None else range(len(iris.target))
    lines = ["sepal_length,sepal_width,petal_length,petal_width," + label]
    lines += [",".join(map(str, iris.data[i])) + "," + SPECIES[iris.target[i]] for i in rows]
    return ("\n".join(lines) + "\n").encode()


def parquet_bytes(table: pa.Table, **kwargs) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **kwargs)
    return buf.getvalue()


def iris_table() -> pa.Table:
    iris = load_iris()
    columns = {f"f{i}": iris.data[:, i] for i in range(4)}
    return pa.table({**columns, "species": [SPECIES[t] for t in iris.target]})


# --- string labels ---------------------------------------------------------------------


def test_names_in_a_csv_label_column_are_classes_in_sorted_order(tmp_path):
    path = tmp_path / "iris.csv"
    order = np.random.default_rng(0).permutation(150)  # virginica may come first: the order is sorted, not seen
    path.write_bytes(iris_csv(order=order))
    info = inspect_file(path, "csv", "species")
    assert (info.num_samples, info.input_shape, info.num_classes) == (150, (4,), 3)
    assert info.class_names == tuple(SPECIES)
    x, y = load_file(path, "csv", "species")
    assert x.shape == (150, 4) and np.array_equal(y, load_iris().target[order])


def test_integer_labels_have_no_names(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,label\n1,0\n2,1\n")
    assert inspect_file(path, "csv").class_names == ()


def test_csv_fast_and_slow_paths_agree_on_names(tmp_path, monkeypatch):
    rows = ' 1.5 , cat ,"2"\r\n\r\n-3,"dog",4e2\r\n0.1, bird,1e-3\r\n'
    path = tmp_path / "d.csv"
    path.write_text("f0,label,f1\r\n" + rows * 400)
    fast = load_file(path, "csv")
    monkeypatch.setattr(np, "loadtxt", lambda *a, **k: (_ for _ in ()).throw(ValueError("off")))
    slow = load_file(path, "csv")
    assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1])
    assert list(fast[1][:3]) == [1, 2, 0]  # bird, cat, dog
    assert inspect_file(path, "csv").class_names == ("bird", "cat", "dog")


@pytest.mark.parametrize(
    "text, reason",
    [
        ("a,label\n1,cat\n2,3\n", "line 3: label '3' is a number, but the labels before it are names"),
        ("a,label\n1,0\n2,cat\n", "line 3: label 'cat' is not an integer, but the labels before it are integers"),
        ("a,label\n1,cat\n2, \n", "line 3: an empty label"),
        ("a,label\n1,cat\n2,cat\n", "at least two classes"),
        ("a,label\n1,cat\nx,dog\n", "line 3: column 'a' value 'x' is not a number"),
        (f"a,label\n1,cat\n2,{'d' * (MAX_NAME_CHARS + 1)}\n", f"at most {MAX_NAME_CHARS}"),
    ],
)
def test_bad_names_are_refused_with_the_line(tmp_path, text, reason):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DatasetFormatError, match=reason):
        inspect_file(path, "csv")


def test_a_label_switching_to_numbers_in_a_later_block_names_its_line(tmp_path):
    lines = ["a,label"] + [f"{i},{'cat' if i % 2 else 'dog'}" for i in range(60_000)] + ["1,7"]
    path = tmp_path / "late.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetFormatError, match="line 60002: label '7' is a number"):
        inspect_file(path, "csv")


def test_more_names_than_classes_allowed_are_refused(tmp_path):
    path = tmp_path / "many.csv"
    path.write_text("a,label\n" + "".join(f"{i},n{i}\n" for i in range(10_001)))
    with pytest.raises(DatasetFormatError, match="more than 10000 classes"):
        inspect_file(path, "csv")


def test_a_csv_upload_with_names_shows_them(api, local_storage):
    r = upload(api, iris_csv(), "iris.csv", name="flowers", label_column="species")
    assert r.status_code == 201, r.content
    assert (r.json()["class_names"], r.json()["num_classes"]) == (SPECIES, 3)
    detail = api.get(f"/api/v1/datasets/{r.json()['id']}").json()
    assert detail["class_names"] == SPECIES and detail["label_column"] == "species"


# --- Parquet ----------------------------------------------------------------------------


def test_parquet_with_names_and_row_groups(tmp_path):
    path = tmp_path / "iris.parquet"
    path.write_bytes(parquet_bytes(iris_table(), row_group_size=40))
    assert pq.ParquetFile(path).metadata.num_row_groups == 4
    info = inspect_file(path, "parquet", "species")
    assert (info.num_samples, info.input_shape, info.class_names) == (150, (4,), tuple(SPECIES))
    x, y = load_file(path, "parquet", "species")
    iris = load_iris()
    assert np.allclose(x, iris.data) and x.dtype == np.float32 and np.array_equal(y, iris.target)


def test_parquet_with_integer_labels_and_mixed_numeric_columns(tmp_path):
    table = pa.table(
        {
            "flag": pa.array([True, False, True, False]),
            "count": pa.array([1, 2, 3, 4], pa.int16()),
            "label": pa.array([0, 1, 1, 0], pa.uint8()),
            "value": pa.array([0.5, 1.5, 2.5, 3.5], pa.float32()),
        }
    )
    path = tmp_path / "d.parquet"
    path.write_bytes(parquet_bytes(table))
    x, y = load_file(path, "parquet")
    assert x.tolist() == [[1, 1, 0.5], [0, 2, 1.5], [1, 3, 2.5], [0, 4, 3.5]] and y.tolist() == [0, 1, 1, 0]
    assert inspect_file(path, "parquet").class_names == ()


def test_a_categorical_label_column_reads_as_names(tmp_path):
    table = pa.table({"a": [1.0, 2.0, 3.0], "label": pa.array(["b", "a", "b"]).dictionary_encode()})
    path = tmp_path / "d.parquet"
    path.write_bytes(parquet_bytes(table))
    assert load_file(path, "parquet")[1].tolist() == [1, 0, 1]


PARQUET_BAD = {
    "string-feature": (pa.table({"a": ["x", "y"], "label": [0, 1]}), "column 'a' holds string"),
    "nested-feature": (pa.table({"a": [[1.0], [2.0]], "label": [0, 1]}), "feature columns hold numbers"),
    "missing-feature": (pa.table({"a": [1.0, None], "label": [0, 1]}), "column 'a' has missing values"),
    "nan-feature": (pa.table({"a": [1.0, float("nan")], "label": [0, 1]}), "NaN"),
    "beyond-float32": (pa.table({"a": [1.0, 1e39], "label": [0, 1]}), "float32"),
    "fractional-label": (pa.table({"a": [1.0, 2.0], "label": [0, 1.5]}), "label 1.5"),
    "negative-label": (pa.table({"a": [1.0, 2.0], "label": [0, -1]}), "label -1"),
    "missing-label": (pa.table({"a": [1.0, 2.0], "label": ["x", None]}), "missing labels"),
    "empty-name": (pa.table({"a": [1.0, 2.0], "label": ["x", " "]}), "an empty label"),
    "no-label-column": (pa.table({"a": [1.0, 2.0], "klass": [0, 1]}), "no column named 'label'"),
    "date-label": (pa.table({"a": [1.0, 2.0], "label": pa.array([0, 1], pa.date32())}), "labels are integers or names"),
    "one-class": (pa.table({"a": [1.0, 2.0], "label": ["x", "x"]}), "at least two classes"),
    "no-rows": (pa.table({"a": pa.array([], pa.float64()), "label": pa.array([], pa.int64())}), "no rows"),
}


@pytest.mark.parametrize("case", sorted(PARQUET_BAD))
def test_bad_parquet_is_refused_with_its_reason(tmp_path, case):
    table, reason = PARQUET_BAD[case]
    path = tmp_path / f"{case}.parquet"
    path.write_bytes(parquet_bytes(table))
    with pytest.raises(DatasetFormatError, match=reason):
        inspect_file(path, "parquet")


def test_not_parquet_is_a_400_and_leaves_nothing(api, local_storage):
    assert_refused(upload(api, b"PAR1 but not really", "x.parquet"), local_storage, reason="not a readable Parquet")


def huge_row_group(rows: int) -> bytes:
    """A tiny file (zstd of int8 zeros) whose one row group declares ``rows`` rows."""
    zeros = pa.array(np.zeros(rows, np.int8))
    table = pa.table({"a": zeros, "b": zeros, "label": pa.array((np.arange(rows) % 2).astype(np.int8))})
    return parquet_bytes(table, row_group_size=rows, compression="zstd")


@pytest.fixture(scope="module")
def parquet_bomb(tmp_path_factory):
    path = tmp_path_factory.mktemp("parquet") / "bomb.parquet"
    path.write_bytes(huge_row_group(8_000_000))  # 64 MB of float32 features once read
    return path


def test_a_parquet_declaring_a_huge_row_group_is_refused_from_its_footer(parquet_bomb):
    assert parquet_bomb.stat().st_size < 200 * 1024
    with pytest.raises(DatasetTooLarge, match="8000000 rows of 2 features.*decompressed"):
        inspect_file(parquet_bomb, "parquet", max_bytes=LIMIT)
    peak = traced_peak_mib(lambda: inspect_file(parquet_bomb, "parquet", max_bytes=LIMIT))
    assert peak < LIMIT / MiB / 4, f"{peak:.1f} MiB allocated"


def test_a_parquet_bomb_upload_is_413_and_leaves_nothing(api, local_storage, settings, parquet_bomb):
    settings.TENSORFLEET_MAX_DATASET_EXPANDED_BYTES = LIMIT
    r = upload(api, parquet_bomb.read_bytes(), "bomb.parquet")
    assert_refused(r, local_storage, status=413, reason="decompressed")


def test_a_parquet_upload_is_stored_as_parquet(api, local_storage):
    r = upload(api, parquet_bytes(iris_table()), "flowers.parquet", label_column="species")
    assert r.status_code == 201, r.content
    body = r.json()
    assert (body["format"], body["class_names"], body["label_column"]) == ("parquet", SPECIES, "species")
    assert stored(local_storage) == [f"datasets/{body['sha256'][:2]}/{body['sha256']}.parquet"]


# --- a job on names: the names travel with it -----------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("filename, data", [("iris.csv", iris_csv()), ("iris.parquet", parquet_bytes(iris_table()))])
def test_a_job_on_string_labels_carries_the_class_names(
    api, eager_celery, local_storage, django_capture_on_commit_callbacks, filename, data
):
    dataset = upload(api, data, filename, name="flowers", label_column="species").json()
    spec = {"model_type": "mlp", "dataset": "flowers", "num_workers": 2, "epochs": 4, "learning_rate": 0.01, "seed": 3}
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/v1/jobs", spec, format="json")
    assert created.status_code == 201, created.content
    job = api.get(f"/api/v1/jobs/{created.json()['id']}").json()
    assert job["status"] == "succeeded", job["error"]
    assert job["class_names"] == SPECIES and job["dataset_id"] == dataset["id"]
    assert job["metrics"]["val_accuracy"] >= 0.8
    final = Dataset.objects.get(id=dataset["id"]).jobs.get().checkpoints.get(kind="final")
    data = blob_read(final.file.name)
    assert checkpoint_class_names(data) == SPECIES
    assert isinstance(load_checkpoint(data), object)  # the metadata leaves the model config readable
