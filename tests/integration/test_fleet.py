"""`manage.py runfleet` from nothing: embedded Redis, SQLite, local files; a demo job,
a `submit_job --watch`, then SIGINT leaves no process of the fleet behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import REPO, free_ports, wait_for

pytestmark = pytest.mark.integration


def fleet_processes(marker: str) -> list[int]:
    """PIDs whose environment carries the fleet's own state folder."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def test_runfleet_trains_the_demo_and_stops_cleanly(tmp_path):
    state = tmp_path / "state"
    api, flower, redis_port = free_ports(3)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    env.update(TENSORFLEET_STATE_DIR=str(state), PYTHONUNBUFFERED="1")  # nothing else: embedded defaults
    log = open(tmp_path / "fleet.out", "wb")
    started = time.monotonic()
    fleet = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "runfleet",
            "--demo",
            "--demo-epochs",
            "3",
            "--workers",
            "2",
            "--port",
            str(api),
            "--flower-port",
            str(flower),
            "--redis-port",
            str(redis_port),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output = lambda: (tmp_path / "fleet.out").read_text(errors="replace")  # noqa: E731
    try:
        wait_for(lambda: "demo job succeeded" in output() or fleet.poll() is not None, timeout=180, what="the demo job")
        assert "demo job succeeded" in output(), output()[-3000:]
        demo_s = time.monotonic() - started
        assert f"http://127.0.0.1:{api}/api/docs/" in output() and (state / "admin-password.txt").exists()
        assert (state / "tensorfleet.sqlite3").exists() and list((state / "media" / "jobs").iterdir())

        watch = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "submit_job",
                "--model",
                "cnn",
                "--dataset",
                "digits",
                "--workers",
                "2",
                "--epochs",
                "5",
                "--watch",
            ],
            cwd=REPO,
            env={**env, "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert watch.returncode == 0, watch.stdout + watch.stderr
        assert "10/10" in watch.stderr and "succeeded" in watch.stdout
        assert len(fleet_processes(str(state))) >= 6  # redis, api, 2 workers (+ pool children), flower
    finally:
        os.kill(fleet.pid, signal.SIGINT)
        fleet.wait(60)
    assert fleet.returncode == 0, output()[-3000:]
    assert "fleet stopped." in output()
    leftovers = fleet_processes(str(state))
    assert leftovers == [], f"still running: {leftovers}"
    print(f"demo job succeeded {demo_s:.1f}s after runfleet started")
