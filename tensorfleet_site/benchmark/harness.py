"""Drive a running fleet over HTTP for the benchmark: jobs, dispatch overhead, latency, API load."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the checkout: manage.py is there


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fleet:
    """`manage.py runfleet` in a state folder of its own (SQLite, embedded Redis, local files)."""

    def __init__(self, workers: int):
        self.workers = workers
        self.state = Path(tempfile.mkdtemp(prefix="tf-bench-"))
        self.port, self.redis_port = free_port(), free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k in ("PATH", "HOME", "LANG", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
        }
        self.env.update(
            TENSORFLEET_STATE_DIR=str(self.state),
            PYTHONUNBUFFERED="1",
            TENSORFLEET_WORKER_IMPORTS="tensorfleet_site.benchmark.noop_tasks",  # the bare-chord floor
            TENSORFLEET_QUOTA_ACTIVE_JOBS="0",  # the benchmark submits hundreds of jobs at once
            TENSORFLEET_QUOTA_SHARDS_IN_FLIGHT="0",
        )
        if os.environ.get("BENCH_DATABASE_URL"):  # an empty PostgreSQL database instead of SQLite
            self.env["DATABASE_URL"] = os.environ["BENCH_DATABASE_URL"]
        self.broker_url = f"redis://127.0.0.1:{self.redis_port}/0"

    def __enter__(self) -> Fleet:
        self.log = open(self.state / "fleet.out", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "runfleet", "--processes", str(self.workers), "--no-flower",
             "--port", str(self.port), "--redis-port", str(self.redis_port)],
            cwd=REPO, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            out = (self.state / "fleet.out").read_text(errors="replace")
            if m := re.search(r"Token\s+([0-9a-f]{64})\b", out):
                self.token = m.group(1)
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"the fleet exited:\n{out[-3000:]}")
            time.sleep(0.2)
        raise TimeoutError("the fleet did not start")

    def __exit__(self, *exc) -> None:
        os.kill(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        shutil.rmtree(self.state, ignore_errors=True)

    # --- HTTP
    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Token {self.token}")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"null")

    def run_job(self, spec: dict, poll_s: float = 0.1, timeout: float = 1800) -> dict:
        job = self.request("POST", "/api/v1/jobs", spec)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.request("GET", f"/api/v1/jobs/{job['id']}")
            if job["status"] in ("succeeded", "failed", "cancelled"):
                if job["status"] != "succeeded":
                    raise RuntimeError(f"bench job {job['id']} {job['status']}: {job['error']}")
                return job
            time.sleep(poll_s)
        raise TimeoutError(f"bench job {job['id']} did not finish")

    def manage(self, *args: str) -> str:
        env = {**self.env, "CELERY_BROKER_URL": self.broker_url}
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, check=True
        ).stdout


def server_wall_s(job: dict) -> float:
    """REST submit (row created) to succeeded (row finished), by the server's clock."""
    from datetime import datetime

    return (datetime.fromisoformat(job["finished_at"]) - datetime.fromisoformat(job["created_at"])).total_seconds()


def first_shard_latency_ms(fleet: Fleet, job: dict) -> float:
    from datetime import datetime

    tasks = fleet.request("GET", f"/api/v1/jobs/{job['id']}/tasks?page_size=1000")["results"]
    first = min(datetime.fromisoformat(t["started_at"]) for t in tasks if t["epoch"] == 1)
    return (first - datetime.fromisoformat(job["created_at"])).total_seconds() * 1000


def bare_chord_per_task_ms(fleet: Fleet, epochs: int, shards: int) -> float:
    """The same shape as a job (epochs chords of shards no-op tasks, each body sending the
    next chord) on the same broker and workers: Celery's own cost per task."""
    script = (
        "import time, uuid, redis, django; django.setup()\n"
        "from tensorfleet_site.benchmark.noop_tasks import noop_chord\n"
        "from django.conf import settings\n"
        "r = redis.Redis.from_url(settings.CELERY_BROKER_URL); run = uuid.uuid4().hex\n"
        f"t0 = time.time(); noop_chord(run, {epochs - 1}, {shards}, 'cpu')\n"
        "while not r.get(f'bench:noop:{run}'): time.sleep(0.01)\n"
        "print(float(r.get(f'bench:noop:{run}')) - t0)\n"
    )
    env = {**fleet.env, "CELERY_BROKER_URL": fleet.broker_url, "DJANGO_SETTINGS_MODULE": "tensorfleet_site.settings"}
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip()) / (epochs * shards) * 1000


def wrk_load(url: str, token: str, seconds: int = 10, connections: int = 8, threads: int = 2) -> dict | None:
    """Requests per second and latency percentiles from wrk (Debian's `wrk`), None without it."""
    if not shutil.which("wrk"):
        return None
    lua = Path(tempfile.mkdtemp()) / "report.lua"
    lua.write_text(
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("JSON {\\"requests\\": %d, \\"errors\\": %d, \\"p50\\": %f, \\"p99\\": %f, \\"duration\\": %f}\\n",\n'
        "    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,\n"
        "    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.duration / 1e6))\n"
        "end\n"
    )
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(lua),
         "-H", f"Authorization: Token {token}", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    data = json.loads(out.split("JSON ", 1)[1].splitlines()[0])
    return {
        "rps": data["requests"] / data["duration"],
        "p50_ms": data["p50"],
        "p99_ms": data["p99"],
        "errors": data["errors"],
    }


def post_load(fleet: Fleet, seconds: float = 5, clients: int = 4) -> dict:
    """POST /jobs from a few threads (each job is cancelled right after, so nothing trains)."""
    import threading

    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds
    spec = {"model_type": "logreg", "dataset": "iris", "epochs": 1, "queue": "gpu"}  # no gpu worker: it stays queued

    def client():
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            fleet.request("POST", "/api/v1/jobs", spec)
            with lock:
                latencies.append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
    }


def seed_jobs(fleet: Fleet, count: int) -> None:
    """Many finished jobs for the admin user, written straight into the fleet's database."""
    script = (
        "import django; django.setup()\n"
        "from django.contrib.auth import get_user_model\n"
        "from jobs.models import Job\n"
        "u = get_user_model().objects.get(username='admin')\n"
        "proto = dict(owner=u, model_type='logreg', dataset='iris', num_workers=1, epochs=1, batch_size=32,\n"
        "  learning_rate=0.001, optimizer='adam', seed=0, queue='cpu', threads=1, input_shape=[4], num_classes=3,\n"
        "  total_tasks=1, completed_tasks=1, status='succeeded')\n"
        f"for i in range(0, {count}, 5000):\n"
        f"    Job.objects.bulk_create([Job(**proto) for _ in range(min(5000, {count} - i))])\n"
    )
    env = {**fleet.env, "DJANGO_SETTINGS_MODULE": "tensorfleet_site.settings"}
    subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, check=True)


def timed_get_ms(fleet: Fleet, path: str, repeat: int = 20) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fleet.request("GET", path)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def new_id() -> str:
    return uuid.uuid4().hex


def reconciler_pass(fleet: Fleet, count: int, passes: int = 5) -> dict:
    """Seconds per reconciler pass with ``count`` running jobs in the fleet's database."""
    env = {**fleet.env, "DJANGO_SETTINGS_MODULE": "tensorfleet_site.settings"}
    proc = subprocess.run(
        [sys.executable, "-m", "tensorfleet_site.benchmark.reconciler_load", str(count), str(passes)],
        cwd=REPO, env=env, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(proc.stdout.strip().splitlines()[-1])


def many_jobs(fleet: Fleet, count: int, threads: int = 8) -> dict:
    """``count`` one-epoch jobs submitted together (``threads`` at a time): jobs per second
    from the first job created to the last finished, by the server's clock."""
    spec = {
        "model_type": "logreg",
        "dataset": "iris",
        "epochs": 1,
        "num_workers": 2,
        "threads": 1,
        "keep_checkpoints": 1,
    }
    ids: list[str] = []
    lock = threading.Lock()

    def submit(n: int) -> None:
        for _ in range(n):
            job = fleet.request("POST", "/api/v1/jobs", spec)
            with lock:
                ids.append(job["id"])

    workers = [
        threading.Thread(target=submit, args=(count // threads + (i < count % threads),)) for i in range(threads)
    ]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    jobs = []
    deadline = time.monotonic() + 1800
    for job_id in ids:
        while time.monotonic() < deadline:
            job = fleet.request("GET", f"/api/v1/jobs/{job_id}")
            if job["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.2)
        jobs.append(job)
    failed = [j["id"] for j in jobs if j["status"] != "succeeded"]
    if failed:
        raise RuntimeError(f"{len(failed)} of {count} jobs did not succeed")
    start = min(datetime.fromisoformat(j["created_at"]) for j in jobs)
    end = max(datetime.fromisoformat(j["finished_at"]) for j in jobs)
    seconds = (end - start).total_seconds()
    return {"jobs": count, "seconds": seconds, "jobs_per_s": count / seconds}
