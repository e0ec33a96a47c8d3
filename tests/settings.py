"""Settings for the test run: the machine's PostgreSQL and Redis unless the environment says otherwise;
where nothing answers, tests/services_plugin.py starts them."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/tensorfleet")
os.environ.setdefault("DATABASE_CONN_MAX_AGE", "0")  # the live server thread must not keep the test DB open
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/9")
os.environ.setdefault("TENSORFLEET_STATE_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), "var", "test"))

from tests.services_plugin import services_ensure  # noqa: E402

services_ensure()  # nothing answers there (a laptop): start them, or fall back on SQLite, in one line

from tensorfleet_site.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast test users
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405 - the laptop fallback
    # A test database in a file, not in memory, so the processes a test starts (commands) share it.
    DATABASES["default"]["TEST"] = {"NAME": DATABASES["default"]["NAME"].replace(".sqlite3", "-test.sqlite3")}  # noqa: F405
