"""runfleet's console (issue 18, first-day edges): the dashboard's URL first, the
processes' logs in var/logs/ (one file each) and not on the console, one line per job
event, and the Flower link for the dashboard's nav."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import pytest
from django.utils import timezone

from jobs.models import EpochMetric, Status
from jobs.services.sweeps import EARLY_STOPPED
from tensorfleet_site.localfleet.banner import banner_lines
from tensorfleet_site.localfleet.job_events import JobEvents
from tensorfleet_site.localfleet.supervisor import Supervisor
from tests.factories import JobFactory

OPTS = {"host": "127.0.0.1", "port": 8000, "flower_port": 5555, "no_flower": False, "processes": 2, "queues": "cpu"}


def wait_until(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_the_banner_names_the_dashboard_first(tmp_path):
    lines = [line for line in banner_lines(OPTS, "admin", None, None, tmp_path, "x", []) if line.startswith("  ")]
    assert lines[0].split() == ["Dashboard", "http://127.0.0.1:8000/dashboard/", "(log", "in", "as", "admin)"]


@pytest.mark.parametrize("echo", [False, True])
def test_process_output_goes_to_its_log_file_and_the_console_only_when_asked(tmp_path, echo):
    console = io.StringIO()
    supervisor = Supervisor(tmp_path / "logs", console=console, colour=False, echo=echo)
    try:
        supervisor.start("worker-1", [sys.executable, "-c", "print('celery chatter')"], restart=False)
        log = tmp_path / "logs" / "worker-1.log"
        wait_until(lambda: log.exists() and "celery chatter" in log.read_text())
        time.sleep(0.2)
        assert ("celery chatter" in console.getvalue()) is echo
    finally:
        supervisor.stop()


def test_a_crashed_process_shows_its_last_lines_on_the_console(tmp_path):
    console = io.StringIO()
    supervisor = Supervisor(tmp_path / "logs", console=console, colour=False)
    try:
        script = "import sys; print('loading'); print('ImportError: no module named x'); sys.exit(3)"
        child = supervisor.start("api", [sys.executable, "-c", script], restart=False)
        child.proc.wait()
        wait_until(lambda: "ImportError" in Path(supervisor.log_path("api")).read_text())
        with pytest.raises(RuntimeError, match="api exited with status 3"):
            supervisor.check()
        assert "api | ImportError: no module named x" in console.getvalue()
    finally:
        supervisor.stop()


@pytest.mark.django_db
def test_one_console_line_per_job_event(user):
    lines: list[str] = []
    before = JobFactory(owner=user, status=Status.RUNNING, name="already-running")
    events = JobEvents(lines.append)
    events.poll()
    assert lines == []  # a job running when the fleet starts is followed, not announced

    job = JobFactory(owner=user, name="mlp-digits", model_type="mlp", dataset="digits", epochs=3, num_workers=2)
    events.poll()
    assert lines == [f"job {str(job.id)[:8]} mlp-digits submitted: mlp on digits, 3 epochs, 2 shards"]

    for epoch, acc in ((1, 0.9), (2, 0.9722)):
        EpochMetric.objects.create(
            job=job, epoch=epoch, train_loss=1, val_loss=1, val_accuracy=acc, samples=1, samples_per_s=1, duration_s=1
        )
    job.__class__.objects.filter(id=job.id).update(status=Status.RUNNING, completed_epochs=2)  # no updated_at
    events.poll()
    assert lines[1:] == [
        f"job {str(job.id)[:8]} mlp-digits epoch 1/3 done, val accuracy 90.0 %",
        f"job {str(job.id)[:8]} mlp-digits epoch 2/3 done, val accuracy 97.2 %",
    ]
    start = timezone.now()
    job.__class__.objects.filter(id=job.id).update(
        status=Status.SUCCEEDED, completed_epochs=2, best_val_accuracy=0.9722, stop_reason="no improvement",
        started_at=start, finished_at=start + timezone.timedelta(seconds=92),
    )  # fmt: skip
    before.__class__.objects.filter(id=before.id).update(status=Status.CANCELLED, error=EARLY_STOPPED)
    events.poll()
    events.poll()  # said once
    assert lines[3:] == [
        f"job {str(before.id)[:8]} already-running early-stopped by its sweep after epoch 0",
        f"job {str(job.id)[:8]} mlp-digits succeeded after 2 epochs in 1m 32s, best val accuracy 97.2 % "
        "(stopped early: no improvement)",
    ]
    failed = JobFactory(owner=user, name="bad", status=Status.FAILED, error="CUDA out of memory\ntraceback")
    events.poll()
    assert lines[5:] == [
        f"job {str(failed.id)[:8]} bad submitted: logreg on iris, 3 epochs, 2 shards",
        f"job {str(failed.id)[:8]} bad failed: CUDA out of memory",
    ]


class Recorder:
    def __init__(self):
        self.started: dict[str, dict] = {}

    def start(self, name, cmd, env=None, restart=True):
        self.started[name] = env or {}


@pytest.mark.parametrize(
    "no_flower, configured, expected",
    [(False, "", "http://127.0.0.1:5555/"), (True, "", None), (False, "https://flower.example", None)],
)
def test_the_api_gets_the_flower_link_when_flower_runs(tmp_path, settings, no_flower, configured, expected):
    from tensorfleet_site.localfleet.management.commands.runfleet import Command

    settings.FLOWER_URL = configured  # set by the operator: the API reads it from its own environment
    recorder = Recorder()
    Command()._start(recorder, {**OPTS, "no_flower": no_flower}, {}, tmp_path, "flower:pw", [])
    assert recorder.started["api"].get("FLOWER_URL") == expected
    assert ("flower" in recorder.started) is not no_flower
