"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tensorfleet_site.access.services import token_create
from tests.factories import UserFactory
from tests.services_plugin import (  # noqa: F401 - hooks
    pytest_collection_modifyitems,
    pytest_report_header,
    pytest_terminal_summary,
)


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
