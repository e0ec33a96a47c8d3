"""The Python client and its `tensorfleet` command against a live server with real workers,
Redis, PostgreSQL and SeaweedFS; the command from a virtualenv of its own holding the
client and its two requirements only, as a laptop or a CI runner would have it."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.urls import NoReverseMatch, reverse
from tensorfleet_client import Client, ClientError, Conflict, FeatureUnavailable, NotFound, QuotaExceeded

from storage_app.models import Checkpoint
from tensorfleet_site.access.services import token_create
from tests.factories import UserFactory

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
IRIS = {"model_type": "mlp", "dataset": "iris", "num_workers": 2, "epochs": 3, "learning_rate": 0.05}


@pytest.fixture
def token(live_server, transactional_db, s3_storage, workers):
    return token_create(user=UserFactory())


@pytest.fixture
def tf(live_server, token):
    with Client(live_server.url, token, timeout=30) as client:
        yield client


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_client_submits_waits_reads_and_downloads(tf, tmp_path):
    with pytest.raises(ClientError) as typo:
        tf.submit_job({**IRIS, "lr": 0.1})
    assert typo.value.status == 400 and "did you mean 'learning_rate'" in typo.value.errors["lr"][0]

    job = tf.submit_job(IRIS)
    bar = io.StringIO()
    done = tf.wait(job["id"][:8], progress=True, poll=0.25, timeout=180, file=bar)
    assert done["status"] == "succeeded", done["error"]
    assert "3/3" in bar.getvalue() and "acc=" in bar.getvalue()  # the bar: epochs, loss, accuracy

    metrics = tf.metrics(done)
    assert metrics["epoch"] == [1, 2, 3] and len(metrics["val_accuracy"]) == 3
    assert all(isinstance(v, float) for v in metrics["train_loss"])
    assert metrics["val_accuracy"][-1] == done["metrics"]["val_accuracy"]

    listed = {c["kind"] + str(c["epoch"]): c for c in tf.checkpoints(done)}
    final = tf.download_checkpoint(done, which="final", path=tmp_path)
    assert sha256_of(final) == listed["final3"]["sha256"]
    best = tf.download_checkpoint(done["id"][:8], which="best", path=tmp_path / "best.safetensors")
    best_row = max((c for c in listed.values() if c["kind"] == "epoch"), key=lambda c: (c["val_accuracy"], -c["epoch"]))
    assert sha256_of(best) == best_row["sha256"]
    assert sha256_of(tf.download_checkpoint(done, which=1, path=tmp_path / "e1")) == listed["epoch1"]["sha256"]

    assert [j["id"] for j in tf.jobs(status="succeeded")] == [done["id"]]
    with pytest.raises(ClientError, match="colour"):
        tf.jobs(colour="blue")  # an unknown filter is the server's 400, not ignored
    with pytest.raises(Conflict):
        tf.cancel(done)
    with pytest.raises(NotFound):
        tf.job("00000000")


def test_lists_pages_quotas_datasets_and_the_registry(tf, settings, tmp_path):
    settings.TENSORFLEET_QUOTA_ACTIVE_JOBS = 2
    long = {**IRIS, "epochs": 500}
    first, second = tf.submit_job(long), tf.submit_job(long, name="second")
    with pytest.raises(QuotaExceeded) as over:
        tf.submit_job(long)
    assert over.value.status == 429 and over.value.quota["limit"] == 2 and over.value.quota["used"] == 2
    for job in (first, second):
        assert tf.cancel(job["id"][:8])["status"] == "cancelled"
    paged = list(tf.iter_jobs(page_size=1))  # one job a page: the next links are followed
    assert [j["id"] for j in paged] == [second["id"], first["id"]]

    csv = tmp_path / "flowers.csv"
    csv.write_text("a,b,label\n" + "".join(f"{i % 7},{(i * 3) % 5},{'xy'[i % 2]}\n" for i in range(60)))
    dataset = tf.upload_dataset(csv, name="flowers")
    assert dataset["name"] == "flowers" and dataset["num_samples"] == 60 and dataset["num_classes"] == 2
    assert [d["name"] for d in tf.datasets()] == ["flowers"]

    try:
        reverse("registered-model-list")
    except NoReverseMatch:  # a server without the model registry: a clear error, not a 404 page
        with pytest.raises(FeatureUnavailable, match="no model registry"):
            tf.register_model("iris-mlp", first)
        return
    trained = tf.wait(tf.submit_job({**IRIS, "epochs": 2}), progress=False, poll=0.25, timeout=180)
    version = tf.register_model("iris-mlp", trained["id"][:8], "best", alias="staging")
    assert version["version"] == 1 and version["job"] == trained["id"] and "staging" in version["aliases"]
    path = tf.download_model("iris-mlp", alias="staging", path=tmp_path)
    assert sha256_of(path) == version["sha256"]


def test_a_sweep_from_the_client(tf):
    spec = {
        "base": {"model_type": "logreg", "dataset": "iris", "epochs": 2, "num_workers": 1},
        "space": {"learning_rate": {"choice": [0.01, 0.1]}},
        "search": "grid",
    }
    bar = io.StringIO()
    sweep = tf.wait_sweep(tf.submit_sweep(spec)["id"][:8], poll=0.5, timeout=180, file=bar)
    assert sweep["status"] == "succeeded" and sweep["counts"]["succeeded"] == 2
    assert "2/2" in bar.getvalue() and "best val_accuracy" in bar.getvalue()
    trials = tf.trials(sweep)
    assert sorted(t["params"]["learning_rate"] for t in trials) == [0.01, 0.1]
    assert sweep["best"]["job_id"] in {t["job_id"] for t in trials}
    assert {j["id"] for j in tf.jobs(sweep=sweep["id"])} == {t["job_id"] for t in trials}


# The command line, from a virtualenv holding only the client -------------------------------


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory) -> Path:
    """A fresh virtualenv with the client installed from client/ the way a user would,
    its requirements resolved by pip (from this machine's configured index)."""
    venv = tmp_path_factory.mktemp("client-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", "-q", str(ROOT / "client")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
    return venv


class Cli:
    """`tensorfleet` from the venv, its output read as it comes (tqdm redraws in place)."""

    def __init__(self, venv: Path, env: dict, *args: str):
        self.proc = subprocess.Popen(
            [str(venv / "bin" / "tensorfleet"), *args],
            env=env,
            cwd=venv.parent,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.chunks: dict[str, list[bytes]] = {"out": [], "err": []}
        self.readers = [
            threading.Thread(target=self._read, args=(s, self.chunks[n]), daemon=True)
            for n, s in (("out", self.proc.stdout), ("err", self.proc.stderr))
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream, into):
        while chunk := os.read(stream.fileno(), 4096):
            into.append(chunk)

    def text(self, name: str) -> str:
        return b"".join(self.chunks[name]).decode(errors="replace")

    def finish(self, timeout: float = 240) -> tuple[int, str, str]:
        code = self.proc.wait(timeout=timeout)
        for reader in self.readers:
            reader.join(timeout=10)
        return code, self.text("out"), self.text("err")


def run_cli(venv: Path, env: dict, *args: str, timeout: float = 240) -> tuple[int, str, str]:
    return Cli(venv, env, *args).finish(timeout)


def test_the_cli_from_its_own_venv_trains_watches_and_downloads(client_venv, live_server, token, tmp_path):
    python = str(client_venv / "bin" / "python")
    for server_side in ("django", "torch", "rest_framework", "jobs"):  # nothing of the server came along
        imported = subprocess.run([python, "-c", f"import {server_side}"], capture_output=True, cwd=tmp_path)
        assert imported.returncode != 0, server_side
    env = {"PATH": os.environ["PATH"], "TENSORFLEET_URL": live_server.url, "TENSORFLEET_TOKEN": token}

    code, out, err = run_cli(client_venv, env, "submit", "--model", "mlp", "--dataset", "iris", "--set", "lr=0.1")
    assert code == 1 and err.count("\n") == 1 and "did you mean 'learning_rate'" in err, err

    argv = ["submit", "--model", "cnn", "--dataset", "digits", "--workers", "2", "--epochs", "2", "--watch"]
    code, out, err = run_cli(client_venv, env, *argv)
    assert code == 0, (out, err)
    job_id = out.split("submitted job ")[1].split()[0]
    assert "2/2" in err and "acc=" in err and f"job {job_id} succeeded: val_accuracy" in out

    code, out, err = run_cli(client_venv, env, "download", job_id[:8], "-o", str(tmp_path))
    assert code == 0, err
    written = Path(out.split("wrote ")[1].split(" (")[0])
    final = Checkpoint.objects.get(job_id=job_id, kind="final")
    assert written.parent == tmp_path and sha256_of(written) == final.sha256 and final.sha256 in out

    code, out, err = run_cli(client_venv, env, "download", job_id[:8], "--epoch", "9")
    assert code == 1 and "no checkpoint for epoch 9 (epochs kept: [1, 2])" in err, err


def test_ctrl_c_in_the_cli_watch_stops_watching_and_the_job_goes_on(client_venv, live_server, token):
    env = {"PATH": os.environ["PATH"], "TENSORFLEET_URL": live_server.url, "TENSORFLEET_TOKEN": token}
    argv = ["submit", "--model", "mlp", "--dataset", "iris", "--epochs", "1000", "--watch"]
    cli = Cli(client_venv, env, *argv)
    deadline = time.monotonic() + 60
    while "status=running" not in cli.text("err"):
        assert cli.proc.poll() is None and time.monotonic() < deadline, (cli.text("out"), cli.text("err"))
        time.sleep(0.2)
    cli.proc.send_signal(signal.SIGINT)
    code, out, err = cli.finish(60)
    job_id = out.split("submitted job ")[1].split()[0]
    assert code == 130 and "Traceback" not in err, err
    assert f"stopped watching; job {job_id[:8]} goes on (running)" in err
    assert f"Watch it again with: tensorfleet watch {job_id[:8]}" in err

    code, out, err = run_cli(client_venv, env, "cancel", job_id[:8])
    assert code == 0 and f"cancelled job {job_id}" in out, err
    code, out, err = run_cli(client_venv, env, "jobs", "--status", "cancelled")
    assert code == 0 and job_id[:8] in out
