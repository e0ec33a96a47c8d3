"""Run the whole platform on this machine: Redis (embedded when none is configured),
the API under gunicorn, Celery workers, Flower; Ctrl-C stops everything."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import sys
import time
import urllib.request
from pathlib import Path
from typing import TextIO, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from tensorfleet_site.access.services import token_create
from tensorfleet_site.celery import app as celery_app
from tensorfleet_site.localfleet import embedded
from tensorfleet_site.localfleet.banner import banner_lines, dashboard_url, flower_url
from tensorfleet_site.localfleet.job_events import JobEvents
from tensorfleet_site.localfleet.state_dir import StateDirBusy, StateLock, make_private
from tensorfleet_site.localfleet.supervisor import Supervisor

DEMO_SPEC = {"name": "demo: cnn on digits", "model_type": "cnn", "dataset": "digits", "num_workers": 2}
DEFAULT_WORKER_METRICS_PORT = 9808
# Beat's schedule lives in the database (the reconciler and the retraining schedules).
BEAT_OPTIONS = ["--scheduler", "django_celery_beat.schedulers:DatabaseScheduler", "--loglevel", "INFO"]
EVENTS_EVERY_S = 1.0  # job events on the console: one cheap query a second
# AF_UNIX socket paths are at most 107 bytes on Linux.
MAX_SOCKET_PATH = 107


def gunicorn_command(host: str, port: int, state: Path) -> list[str]:
    """The API. Its control socket goes in the state folder: gunicorn's default,
    ~/.gunicorn/gunicorn.ctl, is one path for every gunicorn of the user, and each
    removes it when it stops."""
    control = state / "gunicorn.ctl"
    socket_args = (
        ["--control-socket", str(control)] if len(os.fsencode(control)) <= MAX_SOCKET_PATH else ["--no-control-socket"]
    )
    return [
        sys.executable, "-m", "gunicorn", "tensorfleet_site.wsgi:application",
        "--bind", f"{host}:{port}", "--workers", "2", "--threads", "4", "--worker-class", "gthread",
        "--access-logfile", "-", "--graceful-timeout", "10", *socket_args,
    ]  # fmt: skip


def database_files() -> list[Path]:
    """The SQLite database and its journals, wherever DATABASE_URL puts them ([] for PostgreSQL)."""
    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("sqlite3"):
        return []
    name = Path(db["NAME"])
    return [name, *(name.with_name(name.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]


def celery_worker(queues: str, node: str) -> list[str]:
    """A worker process that runs one task at a time (torch sizes its threads per job)."""
    return [
        sys.executable, "-m", "celery", "-A", "tensorfleet_site", "worker",
        "-Q", queues, "--concurrency", "1", "-n", node, "--loglevel", "INFO",
    ]  # fmt: skip


class Command(BaseCommand):
    help = "Start the API, Celery workers, Flower and (if none is configured) a local Redis; Ctrl-C stops them all."

    def add_arguments(self, parser):
        parser.add_argument(
            "--processes",
            type=int,
            default=os.cpu_count() or 1,
            help="Celery worker processes, one task each (default: one per core); a job's shards are its num_workers",
        )
        parser.add_argument(
            "--queues", default=settings.CELERY_TASK_DEFAULT_QUEUE, help="queues the workers consume, comma-separated"
        )
        parser.add_argument("--host", default="127.0.0.1", help="address the API and Flower listen on")
        parser.add_argument("--port", type=int, default=8000, help="API port")
        parser.add_argument("--flower-port", type=int, default=5555)
        parser.add_argument("--no-flower", action="store_true")
        parser.add_argument(
            "--verbose", action="store_true", help="print every process's log on the console too (always in var/logs/)"
        )
        parser.add_argument(
            "--worker-metrics-port",
            type=int,
            default=None,
            help="Prometheus exporter port of the first worker; each next worker, then the control worker, "
            f"takes the next port (default {DEFAULT_WORKER_METRICS_PORT}, or free ports if those are taken; "
            "0: no exporters)",
        )
        parser.add_argument("--redis-port", type=int, default=6379, help="port of the embedded Redis")
        parser.add_argument(
            "--no-embedded", action="store_true", help="start no Redis of its own even if none is configured"
        )
        parser.add_argument(
            "--demo", action="store_true", help="train a demo job (cnn on digits, 2 shards) once the fleet is up"
        )
        parser.add_argument("--demo-epochs", type=int, default=10)
        parser.add_argument(
            "--exit-after-demo",
            action="store_true",
            help="stop the fleet when the demo job ends (exit 0 if it succeeded)",
        )

    def handle(self, *args, **opts):
        if opts["processes"] < 1:
            raise CommandError("--processes: must be at least 1")
        if opts["demo_epochs"] < 1:
            raise CommandError("--demo-epochs: must be at least 1")
        state = Path(settings.STATE_DIR)
        # Before anything is created: the database holds token digests and sessions, Redis
        # the queued work, media the users' data. Only this user may read them.
        unchanged = make_private(state, database_files())
        lock = StateLock(state)
        try:
            lock.acquire()
        except StateDirBusy as exc:
            raise CommandError(str(exc)) from None
        try:
            self._run(opts, state, unchanged)
        finally:
            lock.release()

    def _run(self, opts, state: Path, unchanged: list[Path]) -> None:
        metrics_ports = self._metrics_ports(opts)
        for option in ("port", "flower_port", "redis_port"):
            if embedded.port_in_use(opts["host"], opts[option]) and not (
                option == "redis_port" and embedded.redis_answers("127.0.0.1", opts[option])
            ):
                raise CommandError(f"--{option.replace('_', '-')}: port {opts[option]} is already in use")

        supervisor = Supervisor(state / "logs", console=cast(TextIO, self.stdout._out), echo=opts["verbose"])
        supervisor.say(f"TensorFleet's dashboard: {dashboard_url(opts)} (starting ...)")
        if not opts["verbose"]:
            supervisor.say(f"each process logs to {supervisor.log_dir}/<name>.log; job events follow here")
        for path in unchanged:
            supervisor.say(f"warning: {path} belongs to another user; its permissions could not be narrowed")
        stop = {"now": False}

        def on_signal(signum, frame):
            stop["now"] = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        code = 0
        try:
            env = self._broker(supervisor, opts, state)
            supervisor.say("migrating the database ...")
            call_command("migrate", interactive=False, verbosity=0)
            if settings.AWS_STORAGE_BUCKET_NAME:
                call_command("ensure_buckets")
            flower_auth, flower_login = self._flower_login(state)
            self._start(supervisor, opts, env, state, flower_auth, metrics_ports)
            self._wait_ready(supervisor, opts, stop)
            # Only now, with the banner next: a secret made here is shown once and never again.
            username, password, token = self._admin(state)
            self._banner(opts, username, password, token, state, flower_login, metrics_ports)
            if opts["demo"] and not stop["now"]:
                job = self._demo(opts, username)
                code = 0 if job.status == "succeeded" else 1
                if opts["exit_after_demo"]:
                    stop["now"] = True
            events, polled = JobEvents(supervisor.say), 0.0
            while not stop["now"]:
                supervisor.check()
                if time.monotonic() - polled >= EVENTS_EVERY_S:
                    polled = time.monotonic()
                    events.poll()
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        except TimeoutError as exc:
            supervisor.say(f"runfleet: {exc}")
            code = 1
        finally:
            supervisor.say("stopping the fleet ...")
            supervisor.stop()
            supervisor.say("fleet stopped.")
        if code:
            sys.exit(code)

    def _broker(self, supervisor: Supervisor, opts, state: Path) -> dict[str, str]:
        """The broker the children use: the configured one, else a local Redis (started if none answers)."""
        if "CELERY_BROKER_URL" in os.environ or opts["no_embedded"]:
            return {}
        port = opts["redis_port"]
        url = f"redis://127.0.0.1:{port}/0"
        if embedded.redis_answers("127.0.0.1", port):
            supervisor.say(f"using the Redis already running on 127.0.0.1:{port}")
        else:
            supervisor.start("redis", embedded.redis_command(port, state / "redis"))
            deadline = time.monotonic() + 20
            while not embedded.redis_answers("127.0.0.1", port):
                if time.monotonic() > deadline:
                    raise CommandError(
                        f"the embedded Redis did not start on port {port}; see {state / 'logs' / 'redis.log'}"
                    )
                time.sleep(0.1)
        other = embedded.redis_claim(url, state.resolve())
        if other:
            raise CommandError(
                f"--redis-port: the Redis on port {port} is the broker of the fleet running on {other}; "
                "two fleets on one Redis take each other's tasks: give this one its own --redis-port"
            )
        celery_app.conf.broker_url = url
        celery_app.conf.result_backend = url
        return {"CELERY_BROKER_URL": url, "CELERY_RESULT_BACKEND": url}

    def _admin(self, state: Path) -> tuple[str, str | None, str | None]:
        """The admin user and an API token, made on the first run. Their secrets are
        returned that once, for the banner, and kept only as hashes: a later run has
        none to show (``changepassword``, ``create_token`` make new ones)."""
        User = get_user_model()
        user = User.objects.filter(is_superuser=True).order_by("id").first()
        if user is None:
            password = secrets.token_urlsafe(12)
            with transaction.atomic():
                user = User.objects.create_superuser("admin", "admin@localhost", password)
                token = token_create(user=user)
            return user.get_username(), password, token
        # Earlier versions kept the password here in plain text: show it a last time, then erase it.
        legacy = state / "admin-password.txt"
        if legacy.exists():
            kept = legacy.read_text().strip() or None
            legacy.unlink()
            return user.get_username(), kept, None
        return user.get_username(), None, None

    def _flower_login(self, state: Path) -> tuple[str, str]:
        """Flower's basic auth (user:password) and how the banner describes it. Flower never
        runs open: FLOWER_BASIC_AUTH when set, else a password of its own, kept in the
        (private) state folder because Flower must be given it in plain text on every start."""
        if os.environ.get("FLOWER_BASIC_AUTH"):
            return os.environ["FLOWER_BASIC_AUTH"], "login from FLOWER_BASIC_AUTH"
        secret_file = state / "flower-password.txt"
        if not secret_file.exists():
            secret_file.write_text(secrets.token_urlsafe(12) + "\n")
            secret_file.chmod(0o600)
        return f"flower:{secret_file.read_text().strip()}", f"user flower, password in {secret_file}"

    def _metrics_ports(self, opts) -> list[int]:
        """Exporter ports of the training workers, then of the control worker ([] for none).
        Workers on one machine cannot share a port, so each gets its own."""
        count = opts["processes"] + 1
        base = opts["worker_metrics_port"]
        if base == 0:
            return []
        if base is not None:
            if not 0 < base <= 65536 - count:
                raise CommandError(f"--worker-metrics-port: must be between 1 and {65536 - count}")
            busy = [p for p in range(base, base + count) if embedded.port_in_use(opts["host"], p)]
            if busy:
                raise CommandError(f"--worker-metrics-port: port(s) {', '.join(map(str, busy))} already in use")
            return list(range(base, base + count))
        ports = list(range(DEFAULT_WORKER_METRICS_PORT, DEFAULT_WORKER_METRICS_PORT + count))
        if not any(embedded.port_in_use(opts["host"], p) for p in ports):
            return ports
        # The default range is taken (another fleet?): let the system choose free ports.
        sockets = [socket.socket() for _ in range(count)]
        try:
            for sock in sockets:
                sock.bind((opts["host"], 0))
            return [sock.getsockname()[1] for sock in sockets]
        finally:
            for sock in sockets:
                sock.close()

    def _start(
        self,
        supervisor: Supervisor,
        opts,
        env: dict[str, str],
        state: Path,
        flower_auth: str,
        metrics_ports: list[int],
    ):
        py = sys.executable

        def worker_env(index: int) -> dict[str, str]:
            """The broker, and the worker's own exporter port (0: none)."""
            port = metrics_ports[index] if metrics_ports else 0
            return {
                **env,
                "TENSORFLEET_WORKER_METRICS_PORT": str(port),
                "TENSORFLEET_WORKER_METRICS_ADDRESS": opts["host"],
            }

        # The dashboard's nav links Flower where it runs (unless FLOWER_URL names another).
        flower = {} if opts["no_flower"] or settings.FLOWER_URL else {"FLOWER_URL": flower_url(opts)}
        supervisor.start("api", gunicorn_command(opts["host"], opts["port"], state), {**env, **flower})
        for i in range(1, opts["processes"] + 1):
            supervisor.start(
                f"worker-{i}",
                celery_worker(opts["queues"], f"worker{i}@%h"),
                worker_env(i - 1),
            )
        # The reconciler: beat schedules it, a small worker of its own runs it, so it
        # never waits behind training tasks.
        supervisor.start(
            "control",
            celery_worker(settings.TENSORFLEET_CONTROL_QUEUE, "control@%h"),
            worker_env(opts["processes"]),
        )
        supervisor.start("beat", [py, "-m", "celery", "-A", "tensorfleet_site", "beat", *BEAT_OPTIONS], env)
        if not opts["no_flower"]:
            flower_env = {**env, "FLOWER_BASIC_AUTH": flower_auth}
            supervisor.start(
                "flower",
                [
                    py,
                    "-m",
                    "celery",
                    "-A",
                    "tensorfleet_site",
                    "flower",
                    f"--address={opts['host']}",
                    f"--port={opts['flower_port']}",
                    "--persistent=True",
                    f"--db={state / 'flower.db'}",
                    "--state_save_interval=60000",
                ],
                flower_env,
            )

    def _wait_ready(self, supervisor: Supervisor, opts, stop, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        # Readiness: 200 once the API reaches the database, the broker and storage (a 503 is an OSError).
        ready = f"http://{opts['host']}:{opts['port']}/api/v1/ready"
        while not stop["now"]:
            supervisor.check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the fleet was not ready after {timeout:.0f}s; logs in {supervisor.log_dir}")
            try:
                urllib.request.urlopen(ready, timeout=5).read()
                replies = celery_app.control.ping(timeout=0.5) or []
            except OSError:
                time.sleep(0.3)
                continue
            if len(replies) >= opts["processes"] + 1:  # the training workers and the control worker
                return
            time.sleep(0.3)

    def _banner(self, opts, username, password, token, state, flower_login, metrics_ports) -> None:
        self.stdout.write("\n".join(banner_lines(opts, username, password, token, state, flower_login, metrics_ports)))

    def _demo(self, opts, username: str):
        from jobs.services import lifecycle
        from jobs.specs import job_spec_validate
        from jobs.watch import watch_job

        owner = get_user_model().objects.get(username=username)
        spec = job_spec_validate(owner=owner, data={**DEMO_SPEC, "epochs": opts["demo_epochs"]})
        with transaction.atomic():
            job = lifecycle.job_create(owner=owner, spec=spec)
        self.stdout.write(f"demo job {job.id}: cnn on digits, 2 shards, {job.epochs} epochs")
        job = watch_job(job.id, out=self.stdout._out)
        if job.status == "succeeded":
            self.stdout.write(self.style.SUCCESS(f"demo job succeeded: val_accuracy {job.val_accuracy:.4f}"))
        else:
            self.stdout.write(self.style.ERROR(f"demo job {job.status}: {job.error}"))
        return job
