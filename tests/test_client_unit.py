"""The Python client's own logic against canned answers (httpx.MockTransport): how it
reads errors, pages, checksums and ids. What it does against a real server is tested in
tests/integration/test_client.py."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import httpx
import pytest
from tensorfleet_client import (
    ChecksumMismatch,
    Client,
    ClientError,
    Conflict,
    FeatureUnavailable,
    NotFound,
    QuotaExceeded,
    ServerError,
    TensorFleetError,
)
from tensorfleet_client.cli import main
from tensorfleet_client.transfer import pick_checkpoint

JOB_ID = "3f2a9c1b-5d6e-4f70-8a9b-0c1d2e3f4a5b"


def client_for(handler, **kw) -> Client:
    return Client("http://tf.test", "secret", transport=httpx.MockTransport(handler), **kw)


def test_the_client_imports_neither_django_nor_torch_nor_the_server():
    code = (
        "import sys, tensorfleet_client, tensorfleet_client.cli, tensorfleet_client.parser;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('django', 'torch', 'rest_framework', 'celery', 'jobs', 'workers', 'storage_app', 'tensorfleet_site'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "given, root",
    [
        ("http://tf.test", "http://tf.test"),
        ("http://tf.test/", "http://tf.test"),
        ("http://tf.test/api/v1/", "http://tf.test"),
        ("tf.test:8000", "http://tf.test:8000"),
    ],
)
def test_the_server_url_is_taken_as_people_type_it(given, root):
    seen = []

    def handler(request):
        seen.append(str(request.url))
        return httpx.Response(200, json={"id": JOB_ID, "status": "queued"})

    client = Client(given, "t", transport=httpx.MockTransport(handler))
    client.job(JOB_ID[:8])
    assert seen == [f"{root}/api/v1/jobs/{JOB_ID[:8]}/"]


def test_url_and_token_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("TENSORFLEET_URL", "http://env.test")
    monkeypatch.setenv("TENSORFLEET_TOKEN", "from-env")
    headers = {}

    def handler(request):
        headers.update(request.headers)
        return httpx.Response(200, json={"count": 0, "next": None, "results": []})

    Client(transport=httpx.MockTransport(handler)).jobs()
    assert headers["authorization"] == "Token from-env"
    monkeypatch.delenv("TENSORFLEET_TOKEN")
    with pytest.raises(TensorFleetError, match="TENSORFLEET_TOKEN"):
        Client()


def test_a_400_carries_the_field_messages_in_one_line():
    body = {"lr": ["Unknown field 'lr'; did you mean 'learning_rate'?"], "early_stopping": {"metric": ["Bad."]}}
    client = client_for(lambda request: httpx.Response(400, json=body))
    with pytest.raises(ClientError) as exc:
        client.submit_job(model_type="mlp", dataset="iris", lr=0.1)
    assert exc.value.status == 400
    assert exc.value.errors == {
        "lr": ["Unknown field 'lr'; did you mean 'learning_rate'?"],
        "early_stopping.metric": ["Bad."],
    }
    line = str(exc.value)
    assert "\n" not in line and "did you mean 'learning_rate'" in line and "POST /api/v1/jobs/" in line


def test_a_429_for_a_quota_carries_the_quota():
    body = {"active_jobs": ["You have 2 active jobs; the limit is 2."], "quota": {"quota": "active_jobs", "limit": 2}}
    client = client_for(lambda request: httpx.Response(429, json=body, headers={"Retry-After": "7"}))
    with pytest.raises(QuotaExceeded) as exc:
        client.submit_job(model_type="mlp", dataset="iris")
    assert exc.value.quota == {"quota": "active_jobs", "limit": 2} and exc.value.retry_after == 7.0
    assert "limit is 2" in str(exc.value) and "quota" not in exc.value.errors


def test_status_codes_map_to_their_exceptions():
    answers = {
        "/api/v1/jobs/aaaaaaaa/": httpx.Response(404, json={"detail": "No job with an id starting aaaaaaaa."}),
        "/api/v1/jobs/bbbbbbbb/cancel/": httpx.Response(409, json={"status": ["job already ended"]}),
        "/api/v1/models/": httpx.Response(404, text="<html>Not Found</html>", headers={"content-type": "text/html"}),
    }
    client = client_for(lambda request: answers[request.url.path], retries=0)
    with pytest.raises(NotFound, match="No job with an id starting aaaaaaaa"):
        client.job("aaaaaaaa")
    with pytest.raises(Conflict, match="already ended"):
        client.cancel("bbbbbbbb")
    with pytest.raises(FeatureUnavailable, match="no model registry"):
        client.create_model("digits")


def test_reads_are_retried_on_a_503_writes_are_not():
    calls = []

    def handler(request):
        calls.append(request.method)
        if len(calls) < 3:
            return httpx.Response(503, text="busy")
        return httpx.Response(200, json={"id": JOB_ID, "status": "running"})

    client = client_for(handler)
    assert client.job(JOB_ID)["status"] == "running" and calls == ["GET"] * 3
    calls.clear()
    with pytest.raises(ServerError):
        client.cancel(JOB_ID)
    assert calls == ["POST"]


def test_lists_follow_every_page():
    def handler(request):
        page = int(request.url.params.get("page", "1"))
        following = f"http://tf.test/api/v1/jobs/?page={page + 1}&status=running" if page < 3 else None
        results = [{"id": f"{page}-{i}", "status": "running"} for i in range(2)]
        assert request.url.params["status"] == "running"
        return httpx.Response(200, json={"count": 6, "next": following, "results": results})

    client = client_for(handler)
    assert [j["id"] for j in client.jobs(status="running")] == ["1-0", "1-1", "2-0", "2-1", "3-0", "3-1"]
    assert len(client.jobs(status="running", limit=3)) == 3


def test_metrics_are_plain_lists_per_column():
    rows = [
        {"epoch": 1, "train_loss": 0.9, "val_accuracy": 0.5},
        {"epoch": 2, "train_loss": 0.4, "val_accuracy": 0.8},
    ]
    client = client_for(lambda request: httpx.Response(200, json=rows))
    assert client.metrics({"id": JOB_ID}) == {"epoch": [1, 2], "train_loss": [0.9, 0.4], "val_accuracy": [0.5, 0.8]}


CHECKPOINTS = [
    {"id": 1, "epoch": 1, "kind": "epoch", "val_accuracy": 0.9, "sha256": "a"},
    {"id": 2, "epoch": 2, "kind": "epoch", "val_accuracy": 0.95, "sha256": "b"},
    {"id": 3, "epoch": 3, "kind": "epoch", "val_accuracy": 0.95, "sha256": "c"},
    {"id": 4, "epoch": 3, "kind": "final", "val_accuracy": 0.95, "sha256": "c"},
]


@pytest.mark.parametrize("which, checkpoint_id", [("final", 4), ("best", 2), ("latest", 4), (1, 1), ("3", 3)])
def test_which_checkpoint(which, checkpoint_id):
    assert pick_checkpoint(CHECKPOINTS, which, job_label="j", status="succeeded")["id"] == checkpoint_id


def test_an_epoch_that_is_not_kept_names_the_kept_ones():
    with pytest.raises(TensorFleetError, match=r"no checkpoint for epoch 7 \(epochs kept: \[1, 2, 3\]\)"):
        pick_checkpoint(CHECKPOINTS, 7, job_label="j", status="succeeded")
    with pytest.raises(TensorFleetError, match="no final checkpoint"):
        pick_checkpoint(CHECKPOINTS[:2], "final", job_label="j", status="cancelled")


def _download_server(payload: bytes, announced: str):
    def handler(request):
        path = request.url.path
        if path.endswith("/checkpoints/"):
            return httpx.Response(
                200, json=[{"id": 9, "epoch": 2, "kind": "final", "val_accuracy": 0.9, "sha256": announced}]
            )
        if path.endswith("/download/"):
            headers = {
                "X-Checksum-SHA256": announced,
                "Content-Disposition": 'attachment; filename="job-3f2a9c1b-final.safetensors"',
            }
            return httpx.Response(200, content=payload, headers=headers)
        return httpx.Response(200, json={"id": JOB_ID, "status": "succeeded"})

    return handler


def test_a_download_is_kept_only_when_its_sha256_matches(tmp_path):
    payload = b"weights" * 1000
    good = hashlib.sha256(payload).hexdigest()
    path = client_for(_download_server(payload, good)).download_checkpoint(JOB_ID[:8], path=tmp_path)
    assert path == tmp_path / "job-3f2a9c1b-final.safetensors" and path.read_bytes() == payload

    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    with pytest.raises(ChecksumMismatch, match="not kept"):
        client_for(_download_server(payload, "0" * 64)).download_checkpoint(JOB_ID, path=bad_dir)
    assert list(bad_dir.iterdir()) == []  # neither the file nor its .part


def test_cli_errors_are_one_line_with_the_option_names(capsys):
    body = {"num_workers": ["Ensure this value is less than or equal to 64."]}
    code = main(
        ["--url", "http://tf.test", "--token", "t", "submit", "--model", "mlp", "--dataset", "iris", "--workers", "65"],
        transport=httpx.MockTransport(lambda request: httpx.Response(400, json=body)),
    )
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert err == "tensorfleet: error: --workers: Ensure this value is less than or equal to 64.\n"


def test_cli_submit_sends_the_api_fields_and_any_other_with_set(capsys):
    sent = {}

    def handler(request):
        sent.update(json.loads(request.content))
        return httpx.Response(201, json={"id": JOB_ID, "total_tasks": 4, "queue": "cpu", "warnings": ["no worker"]})

    argv = ["submit", "--model", "cnn", "--dataset", "digits", "--workers", "2", "--epochs", "2"]
    argv += ["--set", "augment=true", "--set", 'model_args={"width": 8}', "--url", "http://tf.test", "--token", "t"]
    assert main(argv, transport=httpx.MockTransport(handler)) == 0
    assert sent == {
        "model_type": "cnn",
        "dataset": "digits",
        "num_workers": 2,
        "epochs": 2,
        "augment": True,
        "model_args": {"width": 8},
    }
    out, err = capsys.readouterr()
    assert f"submitted job {JOB_ID}" in out and "warning: no worker" in err


def test_cli_watch_finds_a_sweep_by_its_id_too(capsys):
    sweep = {"id": JOB_ID, "status": "succeeded", "trials": 2, "counts": {"succeeded": 2}, "metric": "val_accuracy"}
    sweep["best"] = {"trial_number": 2, "job_id": JOB_ID, "metric": 0.96}

    def handler(request):
        if request.url.path.startswith("/api/v1/jobs/"):
            return httpx.Response(404, json={"detail": "No job with an id starting 3f2a9c1b."})
        return httpx.Response(200, json=sweep)

    assert (
        main(["--url", "http://tf.test", "--token", "t", "watch", "3f2a9c1b"], transport=httpx.MockTransport(handler))
        == 0
    )
    assert f"sweep {JOB_ID} succeeded: best trial 2 (job 3f2a9c1b), val_accuracy 0.9600" in capsys.readouterr().out
