"""Management commands: the command line has the API's power and its checks."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from jobs.models import Job
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin(django_user_model):
    return django_user_model.objects.create_superuser("admin", "admin@example.com", "pw")


def run(*args):
    from io import StringIO

    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_submit_job_watch_trains_and_reports_success(admin, eager_celery, local_storage):
    out, err = run(
        "submit_job",
        "--model",
        "mlp",
        "--dataset",
        "iris",
        "--workers",
        "2",
        "--epochs",
        "3",
        "--lr",
        "0.01",
        "--watch",
    )
    job = Job.objects.get()
    assert job.status == "succeeded" and job.owner == admin
    assert f"submitted job {job.id}" in out and "succeeded" in out
    assert "6/6" in err  # the progress bar reached every task


@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs", "0"], "--epochs:"),
        (["--epochs", "ten"], "--epochs: A valid integer is required."),
        (["--workers", "1000"], "--workers:"),
        (["--optimizer", "lbfgs"], "--optimizer:"),
        (["--dataset-size", "100"], "--dataset-size:"),
        (["--owner", "nobody"], "no user named 'nobody'"),
    ],
)
def test_submit_job_bad_arguments_get_one_clear_line(admin, args, message):
    with pytest.raises(CommandError) as exc:
        run("submit_job", "--model", "cnn", "--dataset", "digits", *args)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert Job.objects.count() == 0


def test_bad_argument_exits_non_zero_with_one_line():
    proc = subprocess.run(
        [sys.executable, "manage.py", "submit_job", "--model", "cnn", "--dataset", "digits", "--epochs", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--epochs" in lines[0], proc.stderr


def test_list_jobs_shows_a_table_filtered_by_status(admin):
    done = JobFactory(owner=admin, status="succeeded", val_accuracy=0.9)
    queued = JobFactory(owner=admin)
    out, _ = run("list_jobs", "--status", "succeeded")
    assert out.splitlines()[0].split()[:3] == ["ID", "STATUS", "PROGRESS"]
    assert str(done.id) in out and str(queued.id) not in out and "0.9000" in out
    with pytest.raises(CommandError, match="--status"):
        run("list_jobs", "--status", "sleeping")


def test_job_status_and_cancel(admin):
    job = JobFactory(owner=admin)
    out, _ = run("job_status", str(job.id))
    assert "queued" in out and "0/6 tasks" in out
    run("cancel_job", str(job.id))
    assert Job.objects.get(id=job.id).status == "cancelled"
    with pytest.raises(CommandError, match="already cancelled"):
        run("cancel_job", str(job.id))
    with pytest.raises(CommandError, match="no job with id 'nope'"):
        run("job_status", "nope")


def test_download_checkpoint_checks_the_sha256(admin, eager_celery, local_storage, tmp_path):
    run("submit_job", "--model", "logreg", "--dataset", "wine", "--epochs", "2", "--workers", "1")
    job = Job.objects.get()
    out, _ = run("download_checkpoint", str(job.id), "-o", str(tmp_path))
    final = job.checkpoints.get(kind="final")
    path = tmp_path / f"{job.id}-final.safetensors"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == final.sha256 and final.sha256 in out
    run("download_checkpoint", str(job.id), "--epoch", "1", "-o", str(tmp_path / "e1.safetensors"))
    assert (tmp_path / "e1.safetensors").exists()
    with pytest.raises(CommandError, match="no checkpoint for epoch 7"):
        run("download_checkpoint", str(job.id), "--epoch", "7")
    # A file changed in storage behind the platform's back is refused, and nothing is written.
    (local_storage / final.file.name).write_bytes(b"tampered")
    with pytest.raises(CommandError, match="sha256 mismatch"):
        run("download_checkpoint", str(job.id), "-o", str(tmp_path / "bad.safetensors"))
    assert not (tmp_path / "bad.safetensors").exists()
