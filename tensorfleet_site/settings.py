"""TensorFleet settings, read from the environment.

Every variable is listed in README.md. With nothing set, the project runs on
embedded defaults: SQLite, a local Redis on 127.0.0.1:6379, local file storage.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from jobs.task_names import RECONCILE
from tensorfleet_site.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
STATE_DIR = Path(env_str("TENSORFLEET_STATE_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
# Local mode (the default) allows a built-in SECRET_KEY; production sets
# TENSORFLEET_LOCAL=false and must then give a real one.
LOCAL_MODE = env_bool("TENSORFLEET_LOCAL", True)
SECRET_KEY = env_str("SECRET_KEY") or ("django-insecure-local-only-key" if LOCAL_MODE else "")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when TENSORFLEET_LOCAL=false")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "knox",  # API tokens stored as digests (tensorfleet_site/access)
    "axes",  # login lockouts
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from here, not a CDN
    "django_prometheus",
    "jobs",
    "jobs.registry",  # model registry (label "registry")
    "jobs.webhooks",  # signed, retried, logged event deliveries (label "webhooks")
    "jobs.schedules",  # scheduled retraining (label "schedules")
    "django_celery_beat",  # beat's schedule in the database, editable in the admin
    "workers",
    "storage_app",
    "monitoring_app",
    "tensorfleet_site.dashboard",
    "tensorfleet_site.benchmark",
    "tensorfleet_site.localfleet",
    "tensorfleet_site.quotas",
    "tensorfleet_site.access",
]

MIDDLEWARE = [
    # First and last: django-prometheus times the whole stack (requests, latencies, responses).
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files (admin, API docs) under gunicorn
    "corsheaders.middleware.CorsMiddleware",
    "tensorfleet_site.parsers.RequestBodyLimitMiddleware",  # after CORS: its 4xx answers carry CORS headers
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # turns a locked-out login into a 429 page
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "tensorfleet_site.urls"
WSGI_APPLICATION = "tensorfleet_site.wsgi.application"
ASGI_APPLICATION = "tensorfleet_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: PostgreSQL from DATABASE_URL, SQLite under the state folder when unset.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL") or f"sqlite:///{STATE_DIR / 'tensorfleet.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several worker processes share the file: write-ahead logging lets readers go on
    # while one writes, IMMEDIATE transactions take the write lock up front (no upgrade
    # deadlocks), and a busy file is waited for rather than failed on.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Who may call: logins (admin, dashboard, browsable API) and API tokens (tensorfleet_site/access).
# django-axes counts failed logins per user name and address (a stranger cannot lock
# the admin out from everywhere, nor try more than the limit from one address).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("TENSORFLEET_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("TENSORFLEET_LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "tensorfleet_site.access.throttling.client_address"
# Proxies in front of the API whose X-Forwarded-For is believed (the Ingress: 1). With 0,
# the address is the connection's: a client cannot pick one to dodge a limit.
TENSORFLEET_TRUSTED_PROXIES = env_int("TENSORFLEET_TRUSTED_PROXIES", 0)
# Bad API tokens one address may present per minute; then every token from it gets a 429.
TENSORFLEET_FAILED_TOKENS_PER_MINUTE = env_int("TENSORFLEET_FAILED_TOKENS_PER_MINUTE", 20)
# API tokens never expire (scripts and the CLI use them); revoke one in the admin.
REST_KNOX = {"TOKEN_TTL": None, "AUTH_HEADER_PREFIX": "Token"}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = STATE_DIR / "static"
# Serve app static files straight from their packages too, so a fresh checkout needs no collectstatic.
WHITENOISE_USE_FINDERS = True

# --- Object storage: S3 (MinIO in production) when a bucket is named, local files when not.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(STATE_DIR / "media")))
MEDIA_URL = "/media/"
AWS_STORAGE_BUCKET_NAME = env_str("AWS_STORAGE_BUCKET_NAME")
if AWS_STORAGE_BUCKET_NAME:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL") or None,
            "access_key": env_str("AWS_ACCESS_KEY_ID") or None,
            "secret_key": env_str("AWS_SECRET_ACCESS_KEY") or None,
            "region_name": env_str("AWS_S3_REGION_NAME") or None,
            "file_overwrite": True,  # object keys are deterministic: a retry rewrites the same bytes
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": env_int("AWS_QUERYSTRING_EXPIRE", 300),
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "allow_overwrite": True},
    }
DATASETS_BUCKET = env_str("TENSORFLEET_DATASETS_BUCKET") or AWS_STORAGE_BUCKET_NAME
if AWS_STORAGE_BUCKET_NAME:
    _datasets_storage = {
        "BACKEND": _default_storage["BACKEND"],
        "OPTIONS": {**_default_storage["OPTIONS"], "bucket_name": DATASETS_BUCKET},  # type: ignore[dict-item]
    }
else:
    _datasets_storage = _default_storage
STORAGES = {
    "default": _default_storage,
    "datasets": _datasets_storage,
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage",
        # Public files, collected as root at image build and read by an unprivileged user.
        "OPTIONS": {"file_permissions_mode": 0o644, "directory_permissions_mode": 0o755},
    },
}
# Datasets, weights and checkpoints stored as local files are their owner's alone.
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700

# --- REST API
REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header turns a missing credential into a 401.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tensorfleet_site.access.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # django-filter's backend, answering 400 to a query parameter nothing reads (tensorfleet_site/filtering.py).
    "DEFAULT_FILTER_BACKENDS": ["tensorfleet_site.filtering.StrictFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "tensorfleet_site.filtering.Pagination",  # PAGE_SIZE, or ?page_size= up to 1000
    "PAGE_SIZE": env_int("API_PAGE_SIZE", 20),
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # DRF's three, refusing JSON nested past TENSORFLEET_MAX_JSON_DEPTH, and naming Django's form limits.
    "DEFAULT_PARSER_CLASSES": [
        "tensorfleet_site.parsers.JSONParser",
        "tensorfleet_site.parsers.FormParser",
        "tensorfleet_site.parsers.MultiPartParser",
    ],
    "NUM_PROXIES": TENSORFLEET_TRUSTED_PROXIES,
    "EXCEPTION_HANDLER": "tensorfleet_site.api_errors.exception_handler",  # quotas: 429
    "DEFAULT_THROTTLE_RATES": {"failed_credentials": f"{TENSORFLEET_FAILED_TOKENS_PER_MINUTE}/min"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "TensorFleet API",
    "DESCRIPTION": "Submit PyTorch training jobs, watch them train across Celery workers, download checkpoints.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The 400/401/404/413/429 answers every operation can give (tensorfleet_site/openapi.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tensorfleet_site.openapi.add_error_responses",
    ],
}
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_ALLOW_CREDENTIALS = env_bool("CORS_ALLOW_CREDENTIALS", False)

# Request bodies: job specs are small JSON documents; dataset uploads are files,
# spooled to disk past FILE_UPLOAD_MAX_MEMORY_SIZE and refused past the dataset limit.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_HANDLERS = [
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "tensorfleet_site.parsers.TemporaryFileUploadHandler",  # Django's, safe with any file name
]
TENSORFLEET_MAX_DATASET_BYTES = env_int("TENSORFLEET_MAX_DATASET_BYTES", 512 * 1024 * 1024)
# What a dataset may decompress to (zip members, gzip, .npy arrays; declared sizes are
# checked before anything is allocated): the least of this many bytes and RATIO times
# the file's own size, never less than 64 MiB. Reading costs memory and CPU in proportion
# to the decompressed bytes (a CSV of short rows parses at about 30 MB/s), so the ratio
# keeps a small upload's cost small; real datasets gzip 3 to 30 times. RATIO 0: no ratio.
TENSORFLEET_MAX_DATASET_EXPANDED_BYTES = env_int("TENSORFLEET_MAX_DATASET_EXPANDED_BYTES", 1024 * 1024 * 1024)
TENSORFLEET_MAX_DATASET_EXPANSION_RATIO = env_int("TENSORFLEET_MAX_DATASET_EXPANSION_RATIO", 100)
# JSON request bodies nested deeper than this are refused with a 400 (job specs nest 3 or 4 levels).
TENSORFLEET_MAX_JSON_DEPTH = env_int("TENSORFLEET_MAX_JSON_DEPTH", 32)
# Per-user quotas (0: unlimited); per-user overrides in the admin (tensorfleet_site/quotas).
TENSORFLEET_QUOTA_ACTIVE_JOBS = env_int("TENSORFLEET_QUOTA_ACTIVE_JOBS", 64)
TENSORFLEET_QUOTA_SHARDS_IN_FLIGHT = env_int("TENSORFLEET_QUOTA_SHARDS_IN_FLIGHT", 256)
TENSORFLEET_QUOTA_SWEEP_TRIALS = env_int("TENSORFLEET_QUOTA_SWEEP_TRIALS", 500)
TENSORFLEET_QUOTA_STORED_BYTES = env_int("TENSORFLEET_QUOTA_STORED_BYTES", 20 * 1024**3)
TENSORFLEET_QUOTA_CHECKPOINTS_PER_JOB = env_int("TENSORFLEET_QUOTA_CHECKPOINTS_PER_JOB", 100)
# Checkpoints a job keeps: its last K epochs, its best epoch and the final one.
TENSORFLEET_KEEP_CHECKPOINTS = env_int("TENSORFLEET_KEEP_CHECKPOINTS", 3)
# Folders the API may import a dataset_path from (a local path outside them is refused).
TENSORFLEET_DATASET_IMPORT_ROOTS = env_list("TENSORFLEET_DATASET_IMPORT_ROOTS", ["/data"])
# S3 places the API may import a dataset_path from: entries "bucket" (all of it) or
# "bucket/prefix/" (keys under the prefix). Empty: s3:// imports are refused.
TENSORFLEET_DATASET_IMPORT_S3 = env_list("TENSORFLEET_DATASET_IMPORT_S3")

# --- Celery: JSON only, late acks, one message prefetched, queues from settings.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", CELERY_BROKER_URL)
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_RESULT_EXTENDED = False
CELERY_RESULT_EXPIRES = env_int("CELERY_RESULT_EXPIRES", 24 * 3600)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TRACK_STARTED = True
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 2 * 3600)
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 2 * 3600 + 120)
# With acks_late on Redis an unacknowledged message is redelivered after the
# visibility timeout: it must exceed the longest task (Celery issues #5935, #3430).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3 * 3600),
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"visibility_timeout": CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Extra task modules a worker imports (the benchmark's fleets add its no-op tasks); none in production.
CELERY_IMPORTS = env_list("TENSORFLEET_WORKER_IMPORTS", [])
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True

# --- Training
TENSORFLEET_QUEUES = env_list("TENSORFLEET_QUEUES", ["cpu", "gpu"])
CELERY_TASK_DEFAULT_QUEUE = TENSORFLEET_QUEUES[0]
TENSORFLEET_GPU_QUEUES = env_list("TENSORFLEET_GPU_QUEUES", ["gpu"])  # workers with a CUDA GPU: fp16 jobs
TENSORFLEET_MAX_SHARDS = env_int("TENSORFLEET_MAX_SHARDS", 64)
TENSORFLEET_MAX_EPOCHS = env_int("TENSORFLEET_MAX_EPOCHS", 1000)
# Limits on a sweep's spec: trials (a grid without `trials` counts its points), fields
# searched, and values in one `choice` list. Checking a sweep costs time in proportion to these.
TENSORFLEET_MAX_SWEEP_TRIALS = env_int("TENSORFLEET_MAX_SWEEP_TRIALS", 1000)
TENSORFLEET_MAX_SWEEP_PARAMS = env_int("TENSORFLEET_MAX_SWEEP_PARAMS", 16)
TENSORFLEET_MAX_SWEEP_CHOICES = env_int("TENSORFLEET_MAX_SWEEP_CHOICES", 1000)
# torch threads per shard task when a job does not say: a worker with concurrency c
# on n cores should train each task with n // c threads so the cores are not oversubscribed.
TENSORFLEET_THREADS_PER_SHARD = env_int("TENSORFLEET_THREADS_PER_SHARD", 0)  # 0: cores // shards
# How often (seconds) a training loop sends a heartbeat and checks whether its job was cancelled.
TENSORFLEET_CANCEL_CHECK_SECONDS = float(env_str("TENSORFLEET_CANCEL_CHECK_SECONDS", "1.0"))
# Each shard's and aggregate's log (GET /api/v1/jobs/<id>/tasks/<task id>/log) keeps its last
# lines within both caps; while a shard trains, a progress line is written at most this often.
TENSORFLEET_TASK_LOG_LINES = env_int("TENSORFLEET_TASK_LOG_LINES", 200)
TENSORFLEET_TASK_LOG_BYTES = env_int("TENSORFLEET_TASK_LOG_BYTES", 32768)
TENSORFLEET_TASK_LOG_PROGRESS_SECONDS = float(env_str("TENSORFLEET_TASK_LOG_PROGRESS_SECONDS", "10"))

# --- The reconciler (Celery beat, `control` queue): dispatches work whose message was lost.
TENSORFLEET_CONTROL_QUEUE = env_str("TENSORFLEET_CONTROL_QUEUE", "control")
TENSORFLEET_RECONCILE_SECONDS = float(env_str("TENSORFLEET_RECONCILE_SECONDS", "10"))
# A running shard silent this long has lost its worker; it is sent again.
TENSORFLEET_HEARTBEAT_TIMEOUT = float(env_str("TENSORFLEET_HEARTBEAT_TIMEOUT", "30"))
# Queued work whose message is gone from the broker this long after sending is sent again.
TENSORFLEET_REDISPATCH_AFTER = float(env_str("TENSORFLEET_REDISPATCH_AFTER", "30"))
# Deliveries a shard gets before losing its worker fails the job.
TENSORFLEET_MAX_ATTEMPTS = env_int("TENSORFLEET_MAX_ATTEMPTS", 3)
# Beat sends the reconciler, and the control worker runs it with the webhook deliveries
# (jobs/webhooks) and the retraining schedules' runs (jobs/schedules).
CELERY_TASK_ROUTES = {name: {"queue": TENSORFLEET_CONTROL_QUEUE} for name in (RECONCILE, "webhooks.*", "schedules.*")}
# Beat's schedule is in the database (django-celery-beat, editable in the admin): the
# entries below are written there when beat starts (it reads expire_seconds, not expires).
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "reconcile": {
        "task": RECONCILE,
        "schedule": TENSORFLEET_RECONCILE_SECONDS,
        "options": {
            "expires": TENSORFLEET_RECONCILE_SECONDS,
            "expire_seconds": max(1, round(TENSORFLEET_RECONCILE_SECONDS)),
        },
    }
}

# --- Webhooks (jobs/webhooks). Hosts a hook may reach though they resolve to a private,
# loopback, link-local or reserved address (names, addresses, networks); empty: public only.
TENSORFLEET_WEBHOOK_ALLOWED_HOSTS = env_list("TENSORFLEET_WEBHOOK_ALLOWED_HOSTS")
TENSORFLEET_WEBHOOK_TIMEOUT = float(env_str("TENSORFLEET_WEBHOOK_TIMEOUT", "5"))  # s: connect; each read
TENSORFLEET_WEBHOOK_MAX_ATTEMPTS = env_int("TENSORFLEET_WEBHOOK_MAX_ATTEMPTS", 5)  # no answer, 5xx, 429: again
TENSORFLEET_WEBHOOK_RETRY_BACKOFF = env_int("TENSORFLEET_WEBHOOK_RETRY_BACKOFF", 10)  # s: retry n waits <= x * 2**n

# --- Monitoring (monitoring_app; docs/OBSERVABILITY.md) -------------------------------
# Bearer token that guards the API's /metrics (`Authorization: Bearer <token>`); open
# when unset, for a scrape over a private network. May come from METRICS_TOKEN_FILE.
METRICS_TOKEN = env_str("METRICS_TOKEN")
# Port of each Celery worker's Prometheus exporter (0: none). Two workers on one machine
# need a port each (runfleet gives base + i); a pod or container has its own.
TENSORFLEET_WORKER_METRICS_PORT = env_int("TENSORFLEET_WORKER_METRICS_PORT", 0)
TENSORFLEET_WORKER_METRICS_ADDRESS = env_str("TENSORFLEET_WORKER_METRICS_ADDRESS", "0.0.0.0")
# Seconds /api/v1/ready waits for its checks (database, broker, storage, run at once);
# below the readiness probe's timeout (5 s in k8s and compose).
TENSORFLEET_READY_TIMEOUT = float(env_str("TENSORFLEET_READY_TIMEOUT", "2"))
# Dashboard (tensorfleet_site/dashboard/): links to Flower and Grafana, shown only when set.
FLOWER_URL = env_str("FLOWER_URL", "")
GRAFANA_URL = env_str("GRAFANA_URL", "")
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/dashboard/"
# --- end of Monitoring ---------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # axes.apps logs a banner at INFO in every process, every manage.py command included.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes.apps": {"level": "WARNING"}},
}

if not LOCAL_MODE:
    # Production is HTTPS behind a proxy that sets X-Forwarded-Proto (docs/DEPLOY.md,
    # "Security settings"); `manage.py check --deploy` passes with these.
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Probes and Prometheus call the pod over plain HTTP, without the proxy's header.
    SECURE_REDIRECT_EXEMPT = [r"^api/v1/(health|ready)/?$", r"^metrics/?$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    # Subdomains of the API's own host only. Preloading asks browsers to hard-code HTTPS
    # for the whole registered domain: its owner decides (docs/DEPLOY.md).
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)

os.makedirs(STATIC_ROOT, exist_ok=True)  # whitenoise warns about a missing folder
