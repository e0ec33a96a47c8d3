"""Uploaded weights: the safetensors header read without torch, and the /api/v1/weights API
(content addressing, ownership, quota, a delete refused while a job starts from them)."""

from __future__ import annotations

import io
import json
import struct

import pytest
import torch
from rest_framework.test import APIClient
from safetensors.torch import save as st_save

from jobs.models import Job
from storage_app.models import Weights
from storage_app.usage import stored_bytes
from storage_app.weights import (
    MAX_HEADER_BYTES,
    WeightsFormatError,
    parse_safetensors_header,
    read_safetensors_header,
)
from tensorfleet_site.access.services import token_create


def safetensors_bytes(tensors: dict | None = None, metadata: dict | None = None) -> bytes:
    tensors = tensors if tensors is not None else {"w": torch.ones(3, 2), "b": torch.zeros(3)}
    return st_save(tensors, metadata=metadata)


def raw_file(header, data: bytes = b"", length: int | None = None) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + data


def entry(dtype: str, shape: list, begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


# The header parser -------------------------------------------------------------------------


def test_a_file_safetensors_wrote_reads_back_with_dtypes_shapes_and_metadata(tmp_path):
    path = tmp_path / "w.safetensors"
    path.write_bytes(
        safetensors_bytes(
            {"a": torch.ones(2, 3), "n": torch.tensor(7), "h": torch.zeros(4, dtype=torch.bfloat16)}, {"k": "v"}
        )
    )
    header = read_safetensors_header(path)
    assert header.tensors == {"a": ("F32", [2, 3]), "n": ("I64", []), "h": ("BF16", [4])}
    assert header.metadata == {"k": "v"}


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "too short"),
        (b"\x05\x00\x00", "too short"),
        (struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}", "the limit is"),
        (struct.pack("<Q", 2**64 - 1) + b"{}", "the limit is"),
        (struct.pack("<Q", 100) + b"{}", "the file has 2 after 8"),
        (struct.pack("<Q", 0), "empty"),
        (raw_file(b'{"a": '), "not valid JSON"),
        (raw_file(b"\xff\xfe{}"), "not UTF-8"),
        (raw_file(b"[" * 100_000 + b"]" * 100_000), "not valid JSON"),
        (raw_file(b'{"a": NaN}'), "not JSON"),
        (raw_file(b"[1, 2]"), "not a JSON object"),
        (raw_file(b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w": 1}', b"\0" * 4), "twice"),
        (raw_file({"w": entry("Q7", [1], 0, 4)}, b"\0" * 4), "unknown dtype"),
        (raw_file({"w": entry("F32", [1], 0, 4) | {"extra": 1}}, b"\0" * 4), "exactly"),
        (raw_file({"w": entry("F32", [-1], 0, 4)}, b"\0" * 4), "shape"),
        (raw_file({"w": entry("F32", [True], 0, 4)}, b"\0" * 4), "shape"),
        (raw_file({"w": entry("F32", [2], 0, 4)}, b"\0" * 4), "takes 8 bytes"),
        (raw_file({"w": entry("F32", [1], 4, 0)}, b"\0" * 4), "not a byte range"),
        (raw_file({"w": entry("F32", [1], 0, 4)}, b"\0" * 8), "file holds 8"),
        (raw_file({"w": entry("F32", [2], 0, 8)}, b"\0" * 4), "file holds 4"),
        (raw_file({"a": entry("F32", [2], 0, 8), "b": entry("F32", [1], 4, 8)}, b"\0" * 8), "overlaps"),
        (raw_file({"a": entry("F32", [1], 0, 4), "b": entry("F32", [1], 8, 12)}, b"\0" * 12), "belong to no tensor"),
        (raw_file({"__metadata__": {"k": 1}}), "maps names to strings"),
    ],
)
def test_hostile_headers_are_refused_with_the_reason(tmp_path, content, reason):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsFormatError, match=reason):
        read_safetensors_header(path)


def test_a_huge_declared_length_is_refused_before_it_is_read(tmp_path, monkeypatch):
    path = tmp_path / "huge.safetensors"
    path.write_bytes(struct.pack("<Q", 2**40) + b"{}")
    monkeypatch.setattr("storage_app.weights.parse_safetensors_header", lambda *a: pytest.fail("parsed"))
    with pytest.raises(WeightsFormatError, match="limit"):
        read_safetensors_header(path)


def test_zero_sized_tensors_and_empty_metadata_are_valid():
    header = {"e": entry("F32", [0, 3], 0, 0), "w": entry("F16", [2], 0, 4), "__metadata__": None}
    parsed = parse_safetensors_header(json.dumps(header).encode(), 4)
    assert parsed.tensors == {"e": ("F32", [0, 3]), "w": ("F16", [2])} and parsed.metadata == {}


# The API -----------------------------------------------------------------------------------


def stored_files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def upload(api, data: bytes, filename: str = "model.safetensors", **fields):
    f = io.BytesIO(data)
    f.name = filename
    return api.post("/api/v1/weights", {"file": f, **fields}, format="multipart")


@pytest.mark.django_db
def test_upload_records_the_tensors_and_downloads_the_same_bytes(api, local_storage):
    data = safetensors_bytes(metadata={"source": "test"})
    r = upload(api, data)
    assert r.status_code == 201, r.content
    body = r.json()
    assert body["name"] == "model" and body["size"] == len(data)
    assert body["tensors"] == {"w": ["F32", [3, 2]], "b": ["F32", [3]]} and body["metadata"] == {"source": "test"}
    assert stored_files(local_storage) == [f"weights/{body['sha256'][:2]}/{body['sha256']}.safetensors"]
    got = api.get(body["download_url"])
    assert got["X-Checksum-SHA256"] == body["sha256"] and b"".join(got.streaming_content) == data
    listed = api.get("/api/v1/weights").json()
    assert listed["count"] == 1 and listed["results"][0]["num_tensors"] == 2
    assert api.get(f"/api/v1/weights/{body['id']}").json()["tensors"] == body["tensors"]


@pytest.mark.django_db
def test_same_bytes_twice_store_one_object(api, user, local_storage):
    data = safetensors_bytes()
    assert upload(api, data, name="a").status_code == 201
    assert upload(api, data, name="b").status_code == 201
    assert len(stored_files(local_storage)) == 1
    assert Weights.objects.filter(owner=user).count() == 2
    taken = upload(api, data, name="a")
    assert taken.status_code == 400 and "already" in taken.json()["name"][0]
    assert stored_bytes(user) == 2 * len(data)  # each record counts in the stored-bytes quota


@pytest.mark.django_db
@pytest.mark.parametrize(
    "payload, fields, field, reason",
    [
        (b"", {}, "file", "too short"),
        (b"PK\x03\x04 a zip, not weights", {}, "file", "limit"),
        (raw_file({"w": entry("F32", [2], 0, 8)}, b"\0" * 4), {}, "file", "file holds 4"),
        (raw_file({"w": entry("X9", [1], 0, 4)}, b"\0" * 4), {}, "file", "unknown dtype"),
        (raw_file({}), {}, "file", "no tensors"),
        (raw_file(b"\x80\x04pickle"), {}, "file", "UTF-8"),
        (safetensors_bytes(), {"name": "1b4e28ba-2fa1-11d2-883f-0016d3cca427"}, "name", "id"),
        (safetensors_bytes(), {"colour": "red"}, "colour", "Unknown"),
    ],
)
def test_bad_uploads_are_400_naming_the_reason_and_leave_nothing(api, local_storage, payload, fields, field, reason):
    r = upload(api, payload, **fields)
    assert r.status_code == 400, r.content
    assert reason in " ".join(r.json()[field])
    assert stored_files(local_storage) == [] and Weights.objects.count() == 0


@pytest.mark.django_db
def test_too_large_is_413_and_over_the_quota_is_429(api, user, local_storage, settings):
    data = safetensors_bytes()
    settings.TENSORFLEET_MAX_DATASET_BYTES = 50
    assert upload(api, data).status_code == 413
    settings.TENSORFLEET_MAX_DATASET_BYTES = 10**6
    settings.TENSORFLEET_QUOTA_STORED_BYTES = len(data) + 10
    assert upload(api, data, name="first").status_code == 201
    r = upload(api, data, name="second")
    assert r.status_code == 429 and r.json()["quota"]["quota"] == "stored_bytes"
    assert Weights.objects.count() == 1


@pytest.mark.django_db
def test_other_users_get_404_and_cannot_start_from_them(api, other_user, local_storage, monkeypatch):
    monkeypatch.setattr("jobs.services.launch.job_launch", lambda job_id: None)
    mine = upload(api, safetensors_bytes(), name="private").json()
    theirs = APIClient()
    theirs.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=other_user)}")
    assert theirs.get("/api/v1/weights").json()["count"] == 0
    for suffix in ("", "/download"):
        assert theirs.get(f"/api/v1/weights/{mine['id']}{suffix}").status_code == 404
    assert theirs.delete(f"/api/v1/weights/{mine['id']}").status_code == 404
    unknown = theirs.post(
        "/api/v1/jobs", {"model_type": "mlp", "dataset": "iris", "init_from": {"weights": "nothing"}}, format="json"
    )
    for ref in (mine["id"], "private"):
        r = theirs.post(
            "/api/v1/jobs", {"model_type": "mlp", "dataset": "iris", "init_from": {"weights": ref}}, format="json"
        )
        assert r.status_code == 400
        assert r.json()["init_from"][0] == unknown.json()["init_from"][0].replace("nothing", ref)
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_delete_is_refused_while_a_job_starts_from_them(
    api, local_storage, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr("jobs.services.launch.job_launch", lambda job_id: None)
    weights = upload(api, safetensors_bytes(), name="start").json()
    spec = {"model_type": "mlp", "dataset": "iris", "init_from": {"weights": "start"}}
    job = api.post("/api/v1/jobs", spec, format="json")
    assert job.status_code == 201, job.content
    stored = Job.objects.get(id=job.json()["id"]).init_from
    assert stored == {"weights": weights["id"], "name": "start", "sha256": weights["sha256"]}
    assert job.json()["init_from"] == stored  # the job's JSON says what it starts from
    r = api.delete(f"/api/v1/weights/{weights['id']}")
    assert r.status_code == 409 and "starts from" in r.json()["detail"]
    Job.objects.filter(id=job.json()["id"]).update(status="succeeded")
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/v1/weights/{weights['id']}").status_code == 204
    assert stored_files(local_storage) == [] and Weights.objects.count() == 0


@pytest.mark.django_db
def test_a_weights_file_shared_by_two_records_stays_until_the_last_goes(
    api, local_storage, django_capture_on_commit_callbacks
):
    data = safetensors_bytes()
    a, b = upload(api, data, name="a").json(), upload(api, data, name="b").json()
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/v1/weights/{a['id']}").status_code == 204
    assert len(stored_files(local_storage)) == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/v1/weights/{b['id']}").status_code == 204
    assert stored_files(local_storage) == []
