"""Integration fixtures: real Redis, PostgreSQL, SeaweedFS S3 and `celery worker` processes.

The API runs in pytest-django's live server (a real HTTP server in a thread);
workers are separate processes that see only environment variables.
"""

from __future__ import annotations

import time

import pytest
import redis
import requests
from django.conf import settings as django_settings

from tensorfleet_site.access.services import token_create
from tests.factories import UserFactory
from tests.integration.chaos import cluster, operator  # noqa: F401 - the chaos tests' fixtures
from tests.processes import CeleryWorker, S3Server, free_ports, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def broker_url():
    url = django_settings.CELERY_BROKER_URL
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"Redis at {url} is not reachable ({exc}); .ci/run starts one, or set CELERY_BROKER_URL")
    client.flushdb()  # a test database of its own: no messages left from an earlier run
    return url


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("seaweedfs")).start()
    yield server
    server.stop()


@pytest.fixture
def s3_storage(settings, s3_server):
    """Point this process's default storage (the live API server's) at the S3 server."""
    env = s3_server.env()
    s3 = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env["AWS_STORAGE_BUCKET_NAME"],
            "endpoint_url": env["AWS_S3_ENDPOINT_URL"],
            "access_key": env["AWS_ACCESS_KEY_ID"],
            "secret_key": env["AWS_SECRET_ACCESS_KEY"],
            "region_name": env["AWS_S3_REGION_NAME"],
            "file_overwrite": True,
            "default_acl": None,
        },
    }
    settings.STORAGES = {
        "default": s3,
        "datasets": s3,
        "staticfiles": django_settings.STORAGES["staticfiles"],
    }
    return s3_server


def database_url() -> str:
    from django.db import connection

    d = connection.settings_dict
    host = d.get("HOST") or "127.0.0.1"
    port = d.get("PORT") or 5432
    auth = d["USER"] + (f":{d['PASSWORD']}" if d.get("PASSWORD") else "")
    return f"postgres://{auth}@{host}:{port}/{d['NAME']}"


@pytest.fixture(scope="session")
def worker_env(django_db_setup, broker_url, s3_server, tmp_path_factory):
    """Everything a worker on another machine would be given: settings, no shared files."""
    return {
        "DJANGO_SETTINGS_MODULE": "tensorfleet_site.settings",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": broker_url,
        "TENSORFLEET_STATE_DIR": str(tmp_path_factory.mktemp("worker-state")),
        "TENSORFLEET_CANCEL_CHECK_SECONDS": "0.5",
        "PYTHONUNBUFFERED": "1",
        **s3_server.env(),
    }


@pytest.fixture(scope="session")
def workers(worker_env, tmp_path_factory):
    """Two worker processes, one task at a time each, on the cpu queue, each with its
    Prometheus exporter on a port of its own."""
    log_dir = tmp_path_factory.mktemp("worker-logs")
    ports = free_ports(2)
    pool = [
        CeleryWorker(f"w{i}", worker_env, log_dir, metrics_port=port) for i, port in zip((1, 2), ports, strict=True)
    ]
    for w in pool:
        w.start(wait=False)
    for w in pool:
        w.wait_ready()
    yield pool
    for w in pool:
        w.stop()


class ApiClient:
    """The REST API over real HTTP, as a user with a token."""

    def __init__(self, base_url: str, token: str):
        self.base = base_url.rstrip("/") + "/api/v1"
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def get(self, path, **kw):
        return self.session.get(self.base + path, timeout=30, **kw)

    def post(self, path, json=None, **kw):
        return self.session.post(self.base + path, json=json, timeout=30, **kw)

    def wait_job(self, job_id, *, until=("succeeded", "failed", "cancelled"), timeout=240) -> dict:
        def done():
            body = self.get(f"/jobs/{job_id}").json()
            return body if body["status"] in until else None

        return wait_for(done, timeout=timeout, interval=0.25, what=f"job {job_id} to reach {until}")


@pytest.fixture
def http_api(live_server, transactional_db, s3_storage, workers):
    user = UserFactory()
    client = ApiClient(live_server.url, token_create(user=user))
    client.user = user
    yield client


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """On a failure, attach the workers' last log lines to the report."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed and "workers" in item.fixturenames:
        for w in item.funcargs.get("workers", []):
            report.sections.append((f"log of worker {w.name}", w.log_tail(80)))


def elapsed(start: float) -> float:
    return round(time.monotonic() - start, 2)
