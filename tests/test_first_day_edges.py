"""First-day edges (issue 18): Ctrl-C while watching stops the watching, not the job, and
says how to watch again; the 8-character ids the commands print work everywhere an id
does; a typo in a field or a choice gets a suggestion."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.db import connection
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from jobs.models import Job, Sweep
from jobs.services import lifecycle, sweeps
from tests.factories import JobFactory

ROOT = Path(__file__).resolve().parents[1]


def ids_sharing(prefix: str, n: int = 2) -> list[uuid.UUID]:
    """UUIDs that start with the same 8 hex characters."""
    return [uuid.UUID(prefix + uuid.uuid4().hex[8:]) for _ in range(n)]


# A typo gets a suggestion ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"lr": 0.1}, "lr", "Unknown field 'lr'; did you mean 'learning_rate'?"),
        ({"epoch": 3}, "epoch", "Unknown field 'epoch'; did you mean 'epochs'?"),
        ({"workers": 2}, "workers", "Unknown field 'workers'; did you mean 'num_workers'?"),
        ({"colour": "blue"}, "colour", "Unknown field."),  # nothing close: no guess
        (
            {"lr_schedule": "cosin"},
            "lr_schedule",
            "\"cosin\" is not a valid choice; did you mean 'cosine'? Valid choices: constant, step, cosine, one_cycle.",
        ),
        ({"optimizer": "lbfgs"}, "optimizer", '"lbfgs" is not a valid choice. Valid choices: adam, adamw, sgd.'),
    ],
)
def test_a_typo_in_a_job_spec_gets_a_suggestion(api, changes, field, message):
    body = {"model_type": "mlp", "dataset": "iris", **changes}
    r = api.post("/api/v1/jobs", body, format="json")
    assert r.status_code == 400, r.content
    assert list(r.json()) == [field] and message in r.json()[field][0]
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_a_typo_inside_a_nested_spec_or_a_sweep_gets_a_suggestion(api):
    body = {"model_type": "mlp", "dataset": "iris", "early_stopping": {"metric": "val_acc"}}
    r = api.post("/api/v1/jobs", body, format="json")
    assert r.status_code == 400
    assert "did you mean 'val_accuracy'?" in r.json()["early_stopping"]["metric"][0]

    sweep = {"base": {"model_type": "mlp", "dataset": "iris"}, "space": {"lr": {"log_uniform": [1e-3, 1e-1]}}}
    r = api.post("/api/v1/sweeps", {**sweep, "search": "grd"}, format="json")
    assert r.status_code == 400
    assert "did you mean 'grid'?" in r.json()["search"][0] and "random" in r.json()["search"][0]
    r = api.post("/api/v1/sweeps", sweep, format="json")
    assert r.json()["space"]["lr"] == ["Unknown field 'lr'; did you mean 'learning_rate'?"]
    assert Sweep.objects.count() == 0


# Ids by their first 8 characters ------------------------------------------------------------


@pytest.mark.django_db
def test_the_api_takes_a_unique_prefix_of_8_or_more_characters(api, user):
    job = JobFactory(owner=user)
    text = str(job.id)
    for prefix in (text[:8], text[:8].upper(), text[:13], text[:15], text):
        r = api.get(f"/api/v1/jobs/{prefix}/")
        assert r.status_code == 200 and r.json()["id"] == text, prefix
    assert api.get(f"/api/v1/jobs/{text[:8]}/metrics/").status_code == 200
    assert api.get(f"/api/v1/jobs/{text[:8]}/checkpoints").status_code == 200
    r = api.post(f"/api/v1/jobs/{text[:8]}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"

    r = api.get(f"/api/v1/jobs/{text[:7]}/")  # too short to name one job
    assert r.status_code == 404 and "8 or more" in r.json()["detail"]
    other = "0" * 8 if not text.startswith("0" * 8) else "f" * 8
    r = api.get(f"/api/v1/jobs/{other}/")
    assert r.status_code == 404 and r.json()["detail"] == f"No job with an id starting {other}."


@pytest.mark.django_db
def test_an_ambiguous_prefix_is_a_400_listing_the_matches_among_your_own_jobs(api, user, other_user):
    first, second, theirs = ids_sharing("abcdef12", 3)
    JobFactory(owner=user, id=first)
    JobFactory(owner=user, id=second)
    JobFactory(owner=other_user, id=theirs)
    r = api.get("/api/v1/jobs/abcdef12/")
    assert r.status_code == 400
    body = r.json()
    assert sorted(body["matches"]) == sorted([str(first), str(second)])  # never another user's job
    assert "give more characters" in body["id"][0] and str(theirs) not in body["id"][0]
    r = api.post("/api/v1/jobs/abcdef12/cancel")
    assert r.status_code == 400 and Job.objects.filter(status="cancelled").count() == 0
    longer = str(first)[:13]
    assert api.get(f"/api/v1/jobs/{longer}/").json()["id"] == str(first)
    assert api.get(f"/api/v1/jobs/{str(theirs)[:13]}/").status_code == 404


@pytest.mark.django_db
def test_a_sweep_too_is_found_by_a_unique_prefix(api, user):
    sweep = Sweep.objects.create(owner=user, base={}, space={}, max_trials=1, max_concurrent=1, status="queued")
    r = api.get(f"/api/v1/sweeps/{str(sweep.id)[:8]}/")
    assert r.status_code == 200 and r.json()["id"] == str(sweep.id)
    r = api.post(f"/api/v1/sweeps/{str(sweep.id)[:8]}/cancel")
    assert r.status_code == 200, r.content
    assert api.get("/api/v1/sweeps/0000000/").status_code == 404


def test_the_schema_stays_valid_and_says_a_job_id_may_be_a_prefix():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    for path, operations in schema["paths"].items():
        if not path.startswith(("/api/v1/jobs/{id}", "/api/v1/sweeps/{id}")):
            continue
        for operation in operations.values():
            (param,) = [p for p in operation["parameters"] if p["name"] == "id"]
            assert param["in"] == "path" and param["schema"]["type"] == "string"
            assert "format" not in param["schema"] and "prefix" in param["description"]
    assert all(p["name"] != "id" for p in schema["paths"]["/api/v1/jobs/"]["get"].get("parameters", []))


@pytest.mark.django_db
def test_the_commands_take_a_prefix_and_name_the_matches_when_it_is_ambiguous(user):
    first, second = ids_sharing("0badc0de")
    JobFactory(
        owner=user, id=first, status="succeeded", completed_epochs=3, train_loss=0.3, val_loss=0.3, val_accuracy=0.9
    )
    JobFactory(owner=user, id=second)
    out = StringIO()
    call_command("job_status", str(first)[:13], stdout=out)
    assert str(first) in out.getvalue() and "succeeded" in out.getvalue()
    with pytest.raises(CommandError, match="more than one job") as exc:
        call_command("job_status", "0badc0de")
    assert str(first) in str(exc.value) and str(second) in str(exc.value)
    with pytest.raises(CommandError, match="no job with an id starting 0badc0df"):
        call_command("cancel_job", "0badc0df")


@pytest.mark.django_db
def test_watch_follows_a_job_or_a_sweep_by_prefix(user):
    job = JobFactory(owner=user, status="succeeded", completed_epochs=3, completed_tasks=6, val_accuracy=0.9)
    out, err = StringIO(), StringIO()
    call_command("watch", str(job.id)[:8], stdout=out, stderr=err)
    assert f"job {job.id} succeeded: val_accuracy 0.9000" in out.getvalue() and "6/6" in err.getvalue()

    failed = JobFactory(owner=user, status="failed", error="diverged at epoch 2")
    with pytest.raises(CommandError, match="diverged at epoch 2") as exc:
        call_command("watch", str(failed.id)[:8], stdout=StringIO(), stderr=StringIO())
    assert exc.value.returncode == 1

    sweep = Sweep.objects.create(owner=user, base={}, space={}, max_trials=1, max_concurrent=1, status="cancelled")
    with pytest.raises(CommandError, match=f"sweep {sweep.id} cancelled") as exc:
        call_command("watch", str(sweep.id)[:8], stdout=StringIO())
    assert exc.value.returncode == 2
    with pytest.raises(CommandError, match="no job or sweep"):
        call_command("watch", "deadbeef-dead")


# Ctrl-C while watching: a real SIGINT to a real `manage.py` --------------------------------


UNSERVED_BROKER = re.sub(r"/\d+$", "/15", django_settings.CELERY_BROKER_URL)


@pytest.fixture(autouse=True)
def _empty_unserved_broker():
    """The messages the commands sent there are nobody's: removed after each test."""
    yield
    import redis

    redis.Redis.from_url(UNSERVED_BROKER).flushdb()


class Command:
    """`manage.py` against this test's database (committed rows: a transactional test),
    its stdout and stderr read as they come (tqdm redraws without newlines)."""

    def __init__(self, *args: str):
        settings = connection.settings_dict
        host, port = settings["HOST"] or "127.0.0.1", settings["PORT"] or 5432
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": f"postgres://{settings['USER']}@{host}:{port}/{settings['NAME']}",
            # A broker database no worker consumes (integration tests' workers may be running on the
            # test broker's): the job this command submits waits, as on a fleet with no worker.
            "CELERY_BROKER_URL": UNSERVED_BROKER,
            "PYTHONUNBUFFERED": "1",
        }
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.chunks: dict[str, list[bytes]] = {"out": [], "err": []}
        self.readers = [
            threading.Thread(target=self._read, args=(stream, self.chunks[name]), daemon=True)
            for name, stream in (("out", self.proc.stdout), ("err", self.proc.stderr))
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream, into: list[bytes]) -> None:
        while chunk := os.read(stream.fileno(), 4096):
            into.append(chunk)

    def text(self, name: str) -> str:
        return b"".join(self.chunks[name]).decode(errors="replace")

    def interrupt_when(self, marker: str, *, stream: str = "err", timeout: float = 60) -> tuple[str, str]:
        """SIGINT once ``stream`` shows ``marker`` (the command is watching); then its output."""
        deadline = time.monotonic() + timeout
        while marker not in self.text(stream):
            assert self.proc.poll() is None, (self.text("out"), self.text("err"))
            assert time.monotonic() < deadline, f"never saw {marker!r}: {self.text('out')} {self.text('err')}"
            time.sleep(0.1)
        time.sleep(0.5)  # a poll or two into the watch loop
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        for reader in self.readers:
            reader.join(timeout=10)
        return self.text("out"), self.text("err")


def assert_stopped_watching(command: Command, err: str, kind: str, ident: str) -> None:
    assert command.proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert f"stopped watching; {kind} {ident[:8]} goes on" in err, err
    assert f"Watch it again with: python manage.py watch {ident[:8]}" in err, err


@pytest.mark.django_db(transaction=True)
def test_ctrl_c_in_submit_job_watch_stops_watching_and_the_job_goes_on(django_user_model):
    owner = django_user_model.objects.create_user("watcher")
    command = Command("submit_job", "--model", "mlp", "--dataset", "iris", "--owner", "watcher", "--watch")
    out, err = command.interrupt_when("job ")  # the bar's label: "job 3f2a9c1b"
    job = Job.objects.get(owner=owner)
    assert f"submitted job {job.id}" in out
    assert_stopped_watching(command, err, "job", str(job.id))
    job.refresh_from_db()
    assert job.status == "queued"  # no worker runs here: it waits, and goes on waiting
    lifecycle.job_cancel(job=job)  # and takes its messages off the broker


@pytest.mark.django_db(transaction=True)
def test_ctrl_c_in_submit_sweep_watch_and_in_watch_stops_watching(django_user_model, tmp_path):
    owner = django_user_model.objects.create_user("sweeper")
    spec = tmp_path / "sweep.json"
    base = {"model_type": "logreg", "dataset": "iris", "epochs": 2}
    spec.write_text(json.dumps({"base": base, "space": {"learning_rate": {"choice": [0.01, 0.1]}}, "trials": 2}))
    command = Command("submit_sweep", str(spec), "--owner", "sweeper", "--watch")
    out, err = command.interrupt_when("trial 1", stream="out")  # a line per trial: it is watching
    sweep = Sweep.objects.get(owner=owner)
    assert f"submitted sweep {sweep.id}" in out and "trial 1" in out
    assert_stopped_watching(command, err, "sweep", str(sweep.id))

    trial = Job.objects.filter(sweep=sweep).order_by("trial_number").first()
    command = Command("watch", str(trial.id)[:8])
    out, err = command.interrupt_when(f"job {str(trial.id)[:8]}")
    assert_stopped_watching(command, err, "job", str(trial.id))
    trial.refresh_from_db()
    assert trial.status == "queued"
    sweeps.sweep_cancel(sweep=sweep)
