"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import os
import socket

import pytest
from rest_framework.test import APIClient

from tensorfleet_site.access.services import token_create
from tests.factories import UserFactory
from tests.services_plugin import (  # noqa: F401 - hooks
    pytest_collection_modifyitems,
    pytest_report_header,
    pytest_terminal_summary,
)

TEST_PROCESS_WORKER = f"tests-{os.getpid()}@{socket.gethostname()}"  # publishes as a worker would


@pytest.fixture
def local_storage(settings, tmp_path):
    files = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(tmp_path / "media"), "allow_overwrite": True},
    }
    settings.STORAGES = {
        "default": files,
        "datasets": files,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    return tmp_path / "media"


@pytest.fixture
def eager_celery(settings):
    """Run Celery tasks in-process, for fast unit tests of the orchestration."""
    import workers.tasks  # noqa: F401 - registers the tasks, as a worker's autodiscovery does
    from tensorfleet_site.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    yield app
    app.conf.task_always_eager = False
    app.conf.task_eager_propagates = True


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def other_user(db):
    return UserFactory()


@pytest.fixture
def api(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_create(user=user)}")
    return client


@pytest.fixture(autouse=True)
def published_models(request):
    """What a worker publishes when it starts (workers/publishing.py), published by this
    process for every training queue with the same code, so a test that submits a job
    finds its models on its queue without a worker. Only for tests that use the database;
    a test that wants another picture of the fleet changes the rows."""
    uses_db = request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames)
    if not uses_db:
        return
    request.getfixturevalue("transactional_db" if "transactional_db" in request.fixturenames else "db")
    from django.conf import settings

    from workers import publishing

    publishing.publish(worker=TEST_PROCESS_WORKER, queues=settings.TENSORFLEET_QUEUES)
