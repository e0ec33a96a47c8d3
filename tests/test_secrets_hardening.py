"""Secrets at rest and in the open (issue 15): API tokens kept as digests, bad tokens and
failed logins throttled, production settings that pass `check --deploy`, a private
state folder, one fleet per state folder and per local Redis, and runfleet's secrets
shown on the first run only."""

from __future__ import annotations

import importlib
import io
import os
import socket
import sqlite3
import stat
import subprocess
import sys
import types
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from axes.models import AccessAttempt
from django.apps import apps
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from tensorfleet_site.access.services import token_create
from tensorfleet_site.localfleet import embedded
from tensorfleet_site.localfleet.management.commands.runfleet import Command as RunFleet
from tensorfleet_site.localfleet.management.commands.runfleet import gunicorn_command
from tensorfleet_site.localfleet.state_dir import StateLock, make_private

REPO = Path(__file__).resolve().parent.parent
JOBS = "/api/v1/jobs"


@pytest.fixture(autouse=True)
def fresh_throttle_counts():
    cache.clear()  # the failed-token counts live in the cache
    yield
    cache.clear()


@pytest.fixture
def restore_umask():
    old = os.umask(0o022)
    os.umask(old)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


# --- API tokens at rest -----------------------------------------------------------------


@pytest.mark.django_db
def test_an_api_token_is_stored_only_as_a_digest(user):
    key = token_create(user=user)
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    assert key not in dump.getvalue()
    assert key[15:] not in dump.getvalue()  # knox keeps the first 15 characters to find the row
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get(JOBS).status_code == 200


@pytest.mark.django_db
def test_tokens_drf_stored_in_plain_text_keep_working_and_are_erased(user):
    legacy_key = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, created timestamp with time zone NOT NULL,"
            " user_id integer NOT NULL)"
        )
        cursor.execute("INSERT INTO authtoken_token VALUES (%s, now(), %s)", [legacy_key, user.id])
    migration = importlib.import_module("tensorfleet_site.access.migrations.0001_digest_drf_tokens")
    migration.digest_plaintext_tokens(apps, types.SimpleNamespace(connection=connection))

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM authtoken_token")
        assert cursor.fetchone() == (0,)
    assert not AuthToken.objects.filter(digest=legacy_key).exists()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {legacy_key}")
    assert client.get(JOBS).status_code == 200


@pytest.mark.django_db
def test_create_token_prints_a_key_that_works_and_can_replace_the_old_ones(user):
    out = io.StringIO()
    call_command("create_token", user.username, stdout=out)
    first = out.getvalue().strip()
    call_command("create_token", user.username, "--replace", stdout=(out := io.StringIO()))
    second = out.getvalue().strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {first}")
    assert client.get(JOBS).status_code == 401
    client.credentials(HTTP_AUTHORIZATION=f"Token {second}")
    assert client.get(JOBS).status_code == 200


# --- throttling: bad tokens (DRF) and failed logins (django-axes) -----------------------


@pytest.mark.django_db
def test_bad_tokens_from_one_address_are_throttled_and_then_even_a_good_one_is_refused(user):
    limit = django_settings.TENSORFLEET_FAILED_TOKENS_PER_MINUTE
    good = token_create(user=user)
    client = APIClient()
    for i in range(limit):
        # A forged X-Forwarded-For does not make a new address (no proxy is trusted).
        response = client.get(JOBS, HTTP_AUTHORIZATION=f"Token {i:064x}", HTTP_X_FORWARDED_FOR=f"10.9.9.{i}")
        assert response.status_code == 401, i
    refused = client.get(JOBS, HTTP_AUTHORIZATION=f"Token {'f' * 64}")
    assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= 60
    assert "bad token" in refused.json()["detail"]
    # Over the limit a right key is refused too: a 200 would tell a guesser it guessed right.
    assert client.get(JOBS, HTTP_AUTHORIZATION=f"Token {good}").status_code == 429
    # Another address is not affected, and a request without a token is a plain 401.
    assert client.get(JOBS, HTTP_AUTHORIZATION=f"Token {good}", REMOTE_ADDR="10.0.0.2").status_code == 200
    assert client.get(JOBS).status_code == 401


@pytest.mark.django_db
def test_good_tokens_are_never_throttled(api):
    limit = django_settings.TENSORFLEET_FAILED_TOKENS_PER_MINUTE
    assert all(api.get(JOBS).status_code == 200 for _ in range(limit + 5))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header",
    [
        "Token",
        "Token a b",
        "Token " + "g" * 64,
        "Token abc\x00def" + "0" * 40,
        "Token " + "\xff\xfe" * 30,
        "Token 1234",
    ],
)
def test_a_malformed_token_is_a_401_not_a_500(header):
    assert APIClient().get(JOBS, HTTP_AUTHORIZATION=header).status_code == 401


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user("boss", password="right-password-1", is_staff=True)


@pytest.mark.parametrize("login_url", ["/admin/login/", "/accounts/login/"])
def test_logins_lock_after_repeated_failures_for_that_user_and_address(client, staff, login_url):
    for _ in range(django_settings.AXES_FAILURE_LIMIT):
        client.post(login_url, {"username": "boss", "password": "wrong"})
    locked = client.post(login_url, {"username": "boss", "password": "right-password-1"})
    assert locked.status_code == 429 and "_auth_user_id" not in client.session
    # Another user from the same address, and the same user from elsewhere, may log in.
    get_user_model().objects.create_user("other", password="pw-for-tests", is_staff=True)
    assert client.post(login_url, {"username": "other", "password": "pw-for-tests"}).status_code == 302
    client.logout()
    elsewhere = client.post(login_url, {"username": "boss", "password": "right-password-1"}, REMOTE_ADDR="10.0.0.7")
    assert elsewhere.status_code == 302
    client.logout()
    # After the cool-off the lockout ends.
    AccessAttempt.objects.update(attempt_time=timezone.now() - django_settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert client.post(login_url, {"username": "boss", "password": "right-password-1"}).status_code == 302


# --- production settings ---------------------------------------------------------------

PRODUCTION_PROBE = r"""
import re
import django
django.setup()
from django.core.management import call_command
from django.test import Client
import io
found = io.StringIO()
call_command("check", deploy=True, tags=["security"], stdout=found, stderr=found)
print("warnings", sorted(set(re.findall(r"\((security\.W\d+)\)", found.getvalue()))))
c = Client()
print("health", c.get("/api/v1/health").status_code)
print("ready-redirect", c.get("/api/v1/jobs").status_code, c.get("/api/v1/jobs")["Location"])
print("behind-proxy", c.get("/api/v1/jobs", HTTP_X_FORWARDED_PROTO="https").status_code)
"""


def test_production_settings_pass_the_deploy_checks_and_keep_probes_on_http(tmp_path):
    env = clean_env(
        DJANGO_SETTINGS_MODULE="tensorfleet_site.settings",
        TENSORFLEET_LOCAL="false",
        SECRET_KEY="x" * 20 + "a-long-random-production-secret-key-0123456789",
        TENSORFLEET_STATE_DIR=str(tmp_path),
    )
    run = subprocess.run(
        [sys.executable, "-c", PRODUCTION_PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    # The one left: HSTS preloading is the domain owner's call (docs/DEPLOY.md, "Security settings").
    assert "warnings ['security.W021']" in lines, run.stdout
    assert "health 200" in lines
    assert "ready-redirect 301 https://testserver/api/v1/jobs" in lines
    assert "behind-proxy 401" in lines


def test_files_stored_locally_are_private(tmp_path, settings):
    storage = FileSystemStorage(location=tmp_path / "media")
    name = storage.save("datasets/u1/data.npz", ContentFile(b"rows"))
    assert mode(tmp_path / "media" / name) == 0o600
    assert mode(tmp_path / "media" / "datasets" / "u1") == 0o700


# --- the state folder -----------------------------------------------------------------


def test_make_private_narrows_the_state_folder_and_what_is_created_later(tmp_path, restore_umask):
    state = tmp_path / "var"
    (state / "logs").mkdir(parents=True)
    db = state / "tensorfleet.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
    for path in [state, state / "logs"]:
        path.chmod(0o755)
    db.chmod(0o644)
    (state / "logs" / "api.log").write_text("x")
    (state / "logs" / "api.log").chmod(0o644)
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours to change")
    outside.chmod(0o644)
    (state / "link").symlink_to(outside)

    assert make_private(state) == []
    assert mode(state) == mode(state / "logs") == 0o700
    assert mode(db) == mode(state / "logs" / "api.log") == 0o600
    assert mode(outside) == 0o644  # a link is not followed out of the folder
    with sqlite3.connect(db) as conn:  # SQLite makes its WAL and shm files as private as the database
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("INSERT INTO t VALUES (1)")
        assert mode(Path(f"{db}-wal")) == mode(Path(f"{db}-shm")) == 0o600
        (state / "new.txt").write_text("made after")  # the umask covers the fleet's children too
    assert mode(state / "new.txt") == 0o600


def busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_a_second_fleet_on_the_same_state_folder_exits_with_one_line(tmp_path):
    state = tmp_path / "var"
    state.mkdir()
    listening = busy_port()  # were the lock not checked, the fleet would stop at its busy port
    try:
        with StateLock(state):
            run = subprocess.run(
                [sys.executable, "manage.py", "runfleet", "--port", str(listening.getsockname()[1]), "--no-flower"],
                cwd=REPO,
                env=clean_env(TENSORFLEET_STATE_DIR=str(state)),
                capture_output=True,
                text=True,
                timeout=120,
            )
    finally:
        listening.close()
    assert run.returncode != 0
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert str(state) in lines[0] and f"pid {os.getpid()}" in lines[0]


def test_the_state_lock_is_released_when_its_holder_stops(tmp_path):
    with StateLock(tmp_path):
        pass
    with StateLock(tmp_path) as again:
        assert (tmp_path / "fleet.lock").read_text().strip() == str(os.getpid())
    assert again._fd is None


def test_a_local_redis_serves_one_running_fleet_at_a_time(tmp_path):
    url = django_settings.CELERY_BROKER_URL  # the tests' own Redis database
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    client = redis.Redis.from_url(url)
    client.delete(embedded.OWNER_KEY)
    try:
        with StateLock(first):
            assert embedded.redis_claim(url, first) is None
            assert embedded.redis_claim(url, second) == str(first)
        # The first fleet stopped: its mark is taken over.
        assert embedded.redis_claim(url, second) is None
        assert client.get(embedded.OWNER_KEY) == str(second).encode()
    finally:
        client.delete(embedded.OWNER_KEY)
        client.close()


def test_gunicorns_control_socket_is_in_the_state_folder(tmp_path):
    cmd = gunicorn_command("127.0.0.1", 8000, tmp_path)
    assert cmd[cmd.index("--control-socket") + 1] == str(tmp_path / "gunicorn.ctl")
    deep = tmp_path / ("d" * 120)
    assert "--no-control-socket" in gunicorn_command("127.0.0.1", 8000, deep)  # too long for a Unix socket


@pytest.mark.django_db
def test_runfleet_shows_the_admin_password_and_token_on_the_first_run_only(tmp_path):
    username, password, token = RunFleet()._admin(tmp_path)
    assert password and token
    admin = get_user_model().objects.get(username=username)
    assert admin.check_password(password)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(JOBS).status_code == 200
    stored = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert password.encode() not in stored and token.encode() not in stored
    assert RunFleet()._admin(tmp_path) == (username, None, None)


@pytest.mark.django_db
def test_runfleet_shows_a_password_an_older_version_kept_once_and_erases_it(tmp_path):
    get_user_model().objects.create_superuser("admin", "admin@localhost", "kept-in-plain-text")
    (tmp_path / "admin-password.txt").write_text("kept-in-plain-text\n")
    assert RunFleet()._admin(tmp_path) == ("admin", "kept-in-plain-text", None)
    assert not (tmp_path / "admin-password.txt").exists()
    assert RunFleet()._admin(tmp_path) == ("admin", None, None)
