"""Real processes for integration tests: SeaweedFS S3, Redis, Celery workers and beat."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parent.parent


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_for(predicate, *, timeout: float, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - polling: remember and retry
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else "")
    )


def port_open(port: int) -> bool:
    with closing(socket.socket()) as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def venv_bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else (shutil.which(name) or name)


def _kill_group(proc: subprocess.Popen | None, sig: int = signal.SIGKILL, wait: float = 0) -> None:
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, sig)
    try:
        proc.wait(wait or None)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class S3Server:
    """`weed server -s3` on loopback ports of its own, with one bucket. After ``kill()``,
    ``start()`` brings it back on the same ports with the same data (an outage)."""

    ACCESS_KEY = "tensorfleet-test"
    SECRET_KEY = "tensorfleet-test-secret"

    def __init__(self, data_dir: Path, bucket: str = "tensorfleet-test"):
        self.data_dir = data_dir
        self.bucket = bucket
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir / "weed.log"
        self.ports = free_ports(9)

    def start(self) -> S3Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        master, volume, filer, s3, g1, g2, g3, g4, metrics = self.ports
        self.port = s3
        cmd = [
            venv_bin("weed"), "server", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-master.port.grpc={g1}", f"-volume.port={volume}", f"-volume.port.grpc={g2}",
            f"-filer.port={filer}", f"-filer.port.grpc={g3}", "-s3", f"-s3.port={s3}", f"-s3.port.grpc={g4}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=64", "-volume.max=50",
            f"-metricsPort={metrics}",
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_for(lambda: port_open(s3), timeout=60, what="SeaweedFS S3 port")
        client = self.client()

        def bucket_ready():
            try:
                client.create_bucket(Bucket=self.bucket)
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass
            client.put_object(Bucket=self.bucket, Key=".ready", Body=b"")
            return True

        wait_for(bucket_ready, timeout=60, interval=0.3, what="the S3 bucket")
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.ACCESS_KEY,
            aws_secret_access_key=self.SECRET_KEY,
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 2}, connect_timeout=2, read_timeout=10),
        )

    def env(self) -> dict[str, str]:
        return {
            "AWS_S3_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": self.SECRET_KEY,
            "AWS_STORAGE_BUCKET_NAME": self.bucket,
            "AWS_S3_REGION_NAME": "us-east-1",
        }

    def keys(self, prefix: str = "") -> list[str]:
        out = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out += [o["Key"] for o in page.get("Contents", []) if o["Key"] != ".ready"]
        return sorted(out)

    def kill(self) -> None:
        """An outage: the server is gone at once (its data stays on disk)."""
        _kill_group(self.proc)

    def stop(self) -> None:
        # SeaweedFS takes ~10 s to stop gracefully; the test data is throwaway.
        _kill_group(self.proc, signal.SIGTERM, wait=3)


class RedisServer:
    """A `redis-server` of a test's own on a free port, keeping nothing on disk (as the
    machine's Redis does): a restart loses every queued message."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.port = free_ports(1)[0]
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        from tensorfleet_site.localfleet.embedded import redis_answers, redis_server_binary

        self.data_dir.mkdir(parents=True, exist_ok=True)
        cmd = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", str(self.data_dir)]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd, stdout=open(self.data_dir / "redis.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_for(lambda: redis_answers("127.0.0.1", self.port), timeout=20, what="redis-server")
        return self

    def stop(self) -> None:
        _kill_group(self.proc)


class CeleryWorker:
    """A real `celery worker` process with only the given settings in its environment."""

    ready_marker = b"ready."

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        log_dir: Path,
        queues: str = "cpu",
        concurrency: int = 1,
        metrics_port: int = 0,
    ):
        self.name = name
        # Its Prometheus exporter (0: none): a port of its own, as every worker on one machine needs.
        self.metrics_port = metrics_port
        self.env = {**env, "TENSORFLEET_WORKER_METRICS_PORT": str(metrics_port)}
        self.queues = queues
        self.concurrency = concurrency
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def hostname(self) -> str:
        return f"{self.name}@{socket.gethostname()}"

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "celery", "-A", "tensorfleet_site", "worker", "-Q", self.queues,
            "-c", str(self.concurrency), "-n", self.hostname, "--without-gossip", "--without-mingle", "--loglevel=INFO",
        ]  # fmt: skip

    def start(self, wait: bool = True) -> CeleryWorker:
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        self.proc = subprocess.Popen(
            self.command(),
            cwd=REPO,
            env={**base, **self.env},
            stdout=open(self.log_path, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 90) -> None:
        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_offset)
                return self.ready_marker in fh.read()

        wait_for(ready, timeout=timeout, interval=0.2, what=f"{self.name} to be ready")

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 20) -> None:
        _kill_group(self.proc, signal.SIGTERM, wait=timeout)

    def kill(self) -> None:
        """kill -9 the worker and its pool processes, mid-task if it has one."""
        _kill_group(self.proc)


class CeleryBeat(CeleryWorker):
    """`celery beat`: sends the reconciler's periodic task."""

    ready_marker = b"beat: Starting"

    def __init__(self, env: dict[str, str], log_dir: Path):
        super().__init__("beat", env, log_dir)

    def command(self) -> list[str]:
        schedule = Path(self.env.get("TENSORFLEET_STATE_DIR", "/tmp")) / "celerybeat-schedule"
        return [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tensorfleet_site",
            "beat",
            "--loglevel=INFO",
            f"--schedule={schedule}",
        ]
