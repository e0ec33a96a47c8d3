"""CI/CD from the command line: submit_job --watch gates on --min-accuracy (exit 4 below
it) and registers the result with --register-as / --alias."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from jobs.models import Job, Status
from jobs.registry.models import ModelAlias, ModelVersion

ROOT = Path(__file__).resolve().parents[1]
JOB = ["--model", "logreg", "--dataset", "iris", "--workers", "1", "--epochs", "3", "--lr", "0.05", "--seed", "1"]


def _database_url() -> str:
    d = connection.settings_dict
    auth = d["USER"] + (f":{d['PASSWORD']}" if d.get("PASSWORD") else "")
    return f"postgres://{auth}@{d.get('HOST') or '127.0.0.1'}:{d.get('PORT') or 5432}/{d['NAME']}"


# manage.py as a CI step runs it, in a process of its own, with the training tasks loaded
# and run in it (eagerly) instead of on a worker: its exit status is Django's, unchanged.
MANAGE = (
    "import sys, django; django.setup(); import workers.tasks; "
    "from django.core.management import execute_from_command_line; "
    "execute_from_command_line(['manage.py', *sys.argv[1:]])"
)


@pytest.mark.django_db(transaction=True)
def test_min_accuracy_not_reached_exits_non_zero(user, tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tensorfleet_site.settings",
        "DATABASE_URL": _database_url(),
        "CELERY_TASK_ALWAYS_EAGER": "true",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "TENSORFLEET_STATE_DIR": str(tmp_path),
    }
    command = [sys.executable, "-c", MANAGE, "submit_job", *JOB, "--owner", user.username, "--watch"]

    def run(*extra):
        return subprocess.run([*command, *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    gated = run("--min-accuracy", "0.99")
    job = Job.objects.get()
    assert job.status == Status.SUCCEEDED and job.best_val_accuracy < 0.99
    assert gated.returncode == 4, gated.stderr[-2000:]
    assert f"best val_accuracy {job.best_val_accuracy:.4f}, below --min-accuracy 0.99" in gated.stderr
    passed = run("--min-accuracy", "0.5")
    assert passed.returncode == 0, passed.stderr[-2000:]


@pytest.mark.django_db(transaction=True)
def test_a_job_that_passes_the_gate_is_registered_and_aliased(user, eager_celery, local_storage, capsys):
    args = [*JOB, "--owner", user.username, "--watch", "--min-accuracy", "0.5"]
    call_command("submit_job", *args, "--register-as", "iris-ci", "--alias", "staging")
    call_command("submit_job", *args, "--register-as", "iris-ci")
    out = capsys.readouterr().out
    assert "registered iris-ci version 1" in out and "staging -> 1" in out and "registered iris-ci version 2" in out
    first = Job.objects.order_by("created_at").first()
    version = ModelVersion.objects.get(model__name="iris-ci", version=1)
    assert version.job_id == first.id and version.source == "best"
    assert version.metrics["val_accuracy"] == pytest.approx(first.best_val_accuracy)
    assert ModelAlias.objects.get(name="staging").version == version

    with pytest.raises(CommandError) as below:
        call_command(
            "submit_job",
            *[*JOB, "--owner", user.username, "--watch", "--min-accuracy", "0.99"],
            "--register-as",
            "iris-ci",
        )
    assert below.value.returncode == 4
    assert ModelVersion.objects.filter(model__name="iris-ci").count() == 2  # nothing registered below the gate


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--min-accuracy", "0.9"], "--min-accuracy needs --watch"),
        (["--register-as", "m"], "--register-as needs --watch"),
        (["--watch", "--alias", "staging"], "--alias needs --register-as"),
        (["--watch", "--min-accuracy", "90"], "a fraction from 0 to 1"),
        (["--watch", "--register-as", "bad name"], "A model name is"),
        (["--watch", "--register-as", "m", "--alias", "latest"], "reserved"),
    ],
)
@pytest.mark.django_db
def test_ci_options_are_checked_before_anything_is_submitted(user, extra, message):
    with pytest.raises(CommandError, match=message):
        call_command("submit_job", *JOB, "--owner", user.username, *extra)
    assert not Job.objects.exists()
