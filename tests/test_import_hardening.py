"""Imports by dataset_path (issue 15, items 3 and 4) and the list endpoints' query
parameters (item 6): S3 only from the places the operator lists, never the platform's
own objects, a 400 (not a 500) for every bad URI or S3 answer; no symlink out of an
import root; an unknown query parameter a 400 rather than a filter silently dropped."""

from __future__ import annotations

import io
import os

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from django.core.files.storage import FileSystemStorage

from jobs.models import Job
from storage_app.datasets import DatasetError, dataset_import
from storage_app.models import Dataset
from tests.datagen import blobs, write_csv, write_idx_folder
from tests.test_sweeps import no_enqueue  # noqa: F401 - the fixture: launches recorded, not sent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_enqueue")]


def job_with(api, path: str, model_type: str = "mlp"):
    return api.post("/api/v1/jobs", {"model_type": model_type, "dataset_path": path}, format="json")


def refused(r, *phrases: str) -> str:
    """The 400's message on the dataset; nothing was stored."""
    assert r.status_code == 400, r.content
    message = r.json()["dataset"][0]
    for phrase in phrases:
        assert phrase in message, message
    assert not Dataset.objects.exists() and not Job.objects.exists()
    return message


# S3: the allow-list, the platform's own objects, malformed URIs ----------------------------


def test_s3_imports_are_off_by_default_even_with_local_storage(api, local_storage):
    # Before: any s3:// URI was a 500 with local storage (no S3 client to ask).
    refused(job_with(api, "s3://another-team/secret.csv"), "not enabled")


@pytest.mark.parametrize(
    "uri, phrase",
    [
        ("s3://another-team/data/x.csv", "not under the S3 places"),
        ("s3://shared-data/private/x.csv", "not under the S3 places"),
        ("s3://shared-data/public-but-not/x.csv", "not under the S3 places"),  # a prefix is a folder
        ("s3://shared-data/", "not under the S3 places"),  # the whole bucket lists private/ too
        ("s3://Bad_Bucket!/x", "'Bad_Bucket!' is not a valid S3 bucket name"),
        ("s3://no-such-bucket/", "not under the S3 places"),
        ("s3:///x.csv", "'' is not a valid S3 bucket name"),
        ("s3://shared-data/public/../private/x.csv", "'..' segment"),
        ("s3://shared-data/public//x.csv", "empty, '.' or '..' segment"),
        ("s3://shared-data/public/x\x01.csv", "not a valid S3 key"),
    ],
)
def test_s3_uris_outside_the_listed_places_are_400(api, local_storage, settings, uri, phrase):
    settings.TENSORFLEET_DATASET_IMPORT_S3 = ["shared-data/public", "mnist-mirror"]
    refused(job_with(api, uri), phrase)


@pytest.mark.parametrize("key", ["", "jobs/", "jobs/1234/checkpoints/final.safetensors", "datasets/ab/abc.csv", "j"])
def test_the_platforms_own_objects_cannot_be_imported_even_when_listed(api, local_storage, settings, key):
    # Before: "s3://<platform bucket>/" (an empty key) listed the whole bucket, past the prefix guard.
    settings.AWS_STORAGE_BUCKET_NAME = settings.DATASETS_BUCKET = "tensorfleet"
    settings.TENSORFLEET_DATASET_IMPORT_S3 = ["tensorfleet"]  # an operator's mistake
    if key == "j":  # a plain object named "j" is not the platform's; it is refused later, for local storage
        refused(job_with(api, "s3://tensorfleet/j"), "stores files locally")
    else:
        refused(job_with(api, f"s3://tensorfleet/{key}"), "the platform's own objects")


def test_a_listed_place_with_local_storage_is_a_400(api, local_storage, settings):
    settings.TENSORFLEET_DATASET_IMPORT_S3 = ["shared-data/public/"]
    refused(job_with(api, "s3://shared-data/public/iris.csv"), "stores files locally")


# S3: what the object store answers (a stubbed client: no S3 server in unit tests) -----------


class StubbedS3Storage(FileSystemStorage):
    """Local files for what the platform stores; a stubbed boto3 client to import from."""

    def __init__(self, location, client):
        super().__init__(location=location, allow_overwrite=True)
        self.connection = type("Resource", (), {"meta": type("Meta", (), {"client": client})})()


@pytest.fixture
def s3(settings, tmp_path, monkeypatch):
    settings.TENSORFLEET_DATASET_IMPORT_S3 = ["shared-data/public/"]
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    storage = StubbedS3Storage(str(tmp_path / "media"), client)
    monkeypatch.setattr("storage_app.datasets.datasets_storage", lambda: storage)
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def body(data: bytes) -> dict:
    return {"Body": StreamingBody(io.BytesIO(data), len(data)), "ContentLength": len(data)}


def test_an_s3_csv_under_a_listed_prefix_is_imported(s3, user, tmp_path):
    x, y = blobs(60, 3, 2)
    data = write_csv(tmp_path / "iris.csv", x, y).read_bytes()
    s3.add_response("get_object", body(data), {"Bucket": "shared-data", "Key": "public/iris.csv"})
    dataset = dataset_import(owner=user, uri="s3://shared-data/public/iris.csv")
    assert dataset.num_samples == 60 and dataset.source == "s3://shared-data/public/iris.csv"


@pytest.mark.parametrize(
    "operation, code, status, uri, expected",
    [
        ("list_objects_v2", "NoSuchBucket", 404, "s3://shared-data/public/", (400, "no such bucket")),
        ("get_object", "NoSuchKey", 404, "s3://shared-data/public/x.csv", (400, "no such object")),
        ("get_object", "AccessDenied", 403, "s3://shared-data/public/x.csv", (400, "access denied")),
        ("get_object", "SlowDown", 503, "s3://shared-data/public/x.csv", (503, "unavailable")),
    ],
)
def test_s3_errors_are_dataset_errors_not_500s(s3, user, operation, code, status, uri, expected):
    s3.add_client_error(operation, service_error_code=code, http_status_code=status)
    with pytest.raises(DatasetError) as exc:
        dataset_import(owner=user, uri=uri)
    assert (exc.value.status, exc.value.field) == (expected[0], "dataset_path") and expected[1] in str(exc.value)


def test_an_s3_object_over_the_limit_is_refused_before_it_is_read(s3, user, settings):
    settings.TENSORFLEET_MAX_DATASET_BYTES = 100
    s3.add_response("get_object", body(b"a,label\n" * 20), {"Bucket": "shared-data", "Key": "public/big.csv"})
    with pytest.raises(DatasetError) as exc:
        dataset_import(owner=user, uri="s3://shared-data/public/big.csv")
    assert exc.value.status == 413 and "160 bytes; the limit is 100" in str(exc.value)


def test_an_s3_folder_reads_only_its_own_objects(s3, user, tmp_path):
    folder = write_idx_folder(tmp_path / "mnist")
    names = sorted(p.name for p in folder.iterdir())
    listing = {"Contents": [{"Key": f"public/mnist/{n}", "Size": (folder / n).stat().st_size} for n in names]}
    s3.add_response("list_objects_v2", listing, {"Bucket": "shared-data", "Prefix": "public/mnist/", "Delimiter": "/"})
    for n in names:
        s3.add_response(
            "get_object", body((folder / n).read_bytes()), {"Bucket": "shared-data", "Key": f"public/mnist/{n}"}
        )
    dataset = dataset_import(owner=user, uri="s3://shared-data/public/mnist/")
    assert dataset.input_shape == [1, 28, 28] and dataset.format == "idx"


# Local imports: symlinks, unreadable paths, long names -----------------------------------


@pytest.fixture
def root(settings, tmp_path):
    settings.TENSORFLEET_DATASET_IMPORT_ROOTS = [str(tmp_path / "data")]
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


def test_a_symlink_in_an_import_folder_to_a_file_outside_is_refused(api, local_storage, root, tmp_path):
    # Before: the member was read through the link and imported.
    outside = write_idx_folder(tmp_path / "elsewhere")
    folder = write_idx_folder(root / "mnist")
    (folder / "train-labels-idx1-ubyte.gz").unlink()
    os.symlink(outside / "train-labels-idx1-ubyte.gz", folder / "train-labels-idx1-ubyte.gz")
    refused(job_with(api, str(folder), "cnn"), "train-labels-idx1-ubyte.gz: leads outside", "(a symlink)")


def test_a_symlinked_path_or_file_out_of_the_root_is_refused(api, local_storage, root, tmp_path):
    x, y = blobs(40, 3, 2)
    secret = write_csv(tmp_path / "secret.csv", x, y)
    os.symlink(secret, root / "innocent.csv")
    os.symlink(tmp_path, root / "up")
    refused(job_with(api, str(root / "innocent.csv")), "outside the folders")
    refused(job_with(api, str(root / "up" / "secret.csv")), "outside the folders")


def test_symlinks_that_stay_inside_the_root_are_followed(api, local_storage, root):
    real = write_idx_folder(root / "mnist-v1")
    os.symlink(real, root / "mnist")
    folder = write_idx_folder(root / "mnist-test")
    (folder / "t10k-images-idx3-ubyte.gz").unlink()
    os.symlink(real / "t10k-images-idx3-ubyte.gz", folder / "t10k-images-idx3-ubyte.gz")
    for path in (root / "mnist", folder):
        r = job_with(api, str(path), "cnn")
        assert r.status_code == 201, r.content


def test_a_path_that_cannot_be_read_is_a_400(api, local_storage, root):
    # Before: a 500 (OSError: File name too long).
    refused(job_with(api, str(root / ("a" * 300))), "File name too long")


def test_a_file_with_a_long_name_is_imported_under_a_name_that_fits(api, local_storage, root):
    # Before: the dataset was named after the whole file name plus 9 characters, past the
    # column's 200: a 500 from the database.
    x, y = blobs(40, 3, 2)
    path = write_csv(root / ("x" * 240 + ".csv"), x, y)
    r = job_with(api, str(path))
    assert r.status_code == 201, r.content
    assert len(Dataset.objects.get().name) <= 200


# Query parameters of the list endpoints ----------------------------------------------------


@pytest.mark.parametrize(
    "url, param",
    [
        ("/api/v1/jobs?model_type=cnn", "model_type"),
        ("/api/v1/jobs?search=mnist", "search"),
        ("/api/v1/sweeps?model_type=cnn", "model_type"),
        ("/api/v1/datasets?name=iris", "name"),
    ],
)
def test_an_unknown_query_parameter_is_a_400_naming_it(api, url, param):
    r = api.get(url)
    assert r.status_code == 400, r.content
    message = r.json()[param][0]
    assert message.startswith("Unknown query parameter; this endpoint takes:") and "page" in message


def test_known_query_parameters_still_filter_and_page(api):
    for _ in range(3):
        assert api.post("/api/v1/jobs", {"model_type": "mlp", "dataset": "iris"}, format="json").status_code == 201
    assert api.get("/api/v1/jobs", {"status": "queued"}).json()["count"] == 3
    assert api.get("/api/v1/jobs", {"status": "failed"}).json()["count"] == 0
    assert api.get("/api/v1/jobs", {"status": "nonsense"}).status_code == 400
    page = api.get("/api/v1/jobs", {"page_size": 2, "page": 2, "format": "json"}).json()
    assert page["count"] == 3 and len(page["results"]) == 1  # before: page_size was ignored too
    for bad in ("0", "-1", "all", "1001"):  # before: PAGE_SIZE items, as if nothing was asked
        r = api.get("/api/v1/jobs", {"page_size": bad})
        assert r.status_code == 400 and "page_size" in r.json()
    listed = api.get("/api/v1/jobs").json()["results"]
    job = listed[0]["id"]
    assert api.get(f"/api/v1/jobs/{job}/tasks", {"page_size": 1}).status_code == 200
    assert "colour" in api.get(f"/api/v1/jobs/{job}/tasks", {"colour": "red"}).json()


def test_the_platforms_own_files_cannot_be_imported_by_path(api, other_user, local_storage, settings, tmp_path):
    # An import root that holds the media folder (an operator's "/" or "/app") reached
    # every user's stored datasets and checkpoints by path, as s3://<platform bucket>/ did.
    settings.TENSORFLEET_DATASET_IMPORT_ROOTS = [str(tmp_path)]
    x, y = blobs(40, 3, 2)
    theirs = dataset_import(owner=other_user, uri=str(write_csv(tmp_path / "private.csv", x, y)))
    (tmp_path / "private.csv").unlink()
    stored = local_storage / theirs.file.name
    assert stored.is_file()
    Dataset.objects.all().delete()  # refused() checks that nothing is stored
    for path in (stored, stored.parent, local_storage):
        refused(job_with(api, str(path)), "the platform's own files")
    os.symlink(stored, tmp_path / "innocent.csv")
    refused(job_with(api, str(tmp_path / "innocent.csv")), "the platform's own files")
