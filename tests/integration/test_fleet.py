"""`manage.py runfleet` from nothing: embedded Redis, SQLite, local files; a demo job,
a `submit_job --watch`, then SIGINT leaves no process of the fleet behind. On the way:
its secrets are shown once and its state folder is private, and a second fleet on the
same folder is refused."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

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
            "--processes",
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
        assert f"http://127.0.0.1:{api}/api/docs/" in output()
        assert (state / "tensorfleet.sqlite3").exists() and list((state / "media" / "jobs").iterdir())
        # The secrets are printed this once and kept nowhere in plain text.
        password = re.search(r"user admin, password ([\w-]+), shown this once", output()).group(1)
        token = re.search(r"Token\s+([0-9a-f]{64})\s", output()).group(1)
        assert not (state / "admin-password.txt").exists()
        stored = b"".join(p.read_bytes() for p in state.rglob("*") if p.is_file())
        assert password.encode() not in stored and token.encode() not in stored
        jobs = requests.get(f"http://127.0.0.1:{api}/api/v1/jobs", headers={"Authorization": f"Token {token}"})
        assert jobs.status_code == 200 and jobs.json()["count"] == 1
        # Private to this user: the folder, the database and its WAL; gunicorn's control socket lives here.
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        for name in ("tensorfleet.sqlite3", "tensorfleet.sqlite3-wal", "fleet.lock", "flower-password.txt"):
            assert stat.S_IMODE((state / name).stat().st_mode) == 0o600, name
        assert stat.S_ISSOCK((state / "gunicorn.ctl").stat().st_mode)

        # A second fleet on the same folder, on other ports, is refused with one line.
        other_api, other_flower, other_redis = free_ports(3)
        second = subprocess.run(
            [sys.executable, "manage.py", "runfleet", "--port", str(other_api), "--flower-port", str(other_flower),
             "--redis-port", str(other_redis)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.returncode != 0
        assert second.stderr.strip().splitlines() == [
            f"CommandError: another fleet (pid {fleet.pid}) is running on the state folder {state}; "
            "stop it first, or give this one its own folder with TENSORFLEET_STATE_DIR"
        ], second.stderr

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
