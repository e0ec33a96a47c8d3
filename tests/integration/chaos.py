"""The chaos tests' cluster: a Redis on a free port (so restarting it disturbs no other
test), two training workers, the control worker and beat running the reconciler, the
shared SeaweedFS S3 server and the test PostgreSQL database; jobs driven with the
management commands, as an operator would from another machine. Its fixtures are
registered in conftest.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jobs.models import Job, Status, Task
from tests.processes import REPO, CeleryBeat, CeleryWorker, RedisServer, wait_for

# Long enough per shard (about 2 s on one thread) to be interrupted in the middle.
SPEC = ["--model", "mlp", "--dataset", "synthetic", "--dataset-size", "100000", "--workers", "2",
        "--epochs", "4", "--batch-size", "32", "--threads", "1", "--seed", "11"]  # fmt: skip
_reference: dict[str, str] = {}


class Cluster:
    def __init__(self, env, log_dir, redis: RedisServer):
        self.env, self.redis = env, redis
        self.workers = [CeleryWorker(f"chaos{i}", env, log_dir) for i in (1, 2)]
        self.control = CeleryWorker("chaos-control", env, log_dir, queues="control")
        self.beat = CeleryBeat(env, log_dir)

    @property
    def processes(self):
        return [*self.workers, self.control, self.beat]

    def manage(self, *args) -> str:
        proc = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=REPO, env={**os.environ, **self.env},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def submit(self) -> Job:
        body = json.loads(self.manage("submit_job", *SPEC, "--json"))
        return Job.objects.get(id=body["id"])

    def wait(self, job: Job, timeout: float = 150) -> Job:
        def ended():
            job.refresh_from_db()
            return job.status in (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

        wait_for(ended, timeout=timeout, interval=0.2, what=f"job {job.id} to end")
        return job

    def running_task(self, job: Job, worker: str | None = None, min_epoch: int = 1) -> Task:
        def find():
            q = Task.objects.filter(job=job, status=Status.RUNNING, epoch__gte=min_epoch)
            return (q.filter(worker=worker) if worker else q).first()

        return wait_for(find, timeout=60, interval=0.05, what="a running shard")


@pytest.fixture(scope="module")
def cluster(django_db_setup, s3_server, tmp_path_factory):
    from tests.integration.conftest import database_url

    redis = RedisServer(tmp_path_factory.mktemp("chaos-redis")).start()
    env = {
        "DJANGO_SETTINGS_MODULE": "tensorfleet_site.settings",
        "DATABASE_URL": database_url(),
        "CELERY_BROKER_URL": redis.url,
        "TENSORFLEET_STATE_DIR": str(tmp_path_factory.mktemp("chaos-state")),
        "TENSORFLEET_CANCEL_CHECK_SECONDS": "0.3",
        "TENSORFLEET_HEARTBEAT_TIMEOUT": "3",
        "TENSORFLEET_REDISPATCH_AFTER": "3",
        "TENSORFLEET_RECONCILE_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
        **s3_server.env(),
    }
    c = Cluster(env, tmp_path_factory.mktemp("chaos-logs"), redis)
    for p in c.processes:
        p.start(wait=False)
    for p in c.processes:
        p.wait_ready()
    yield c
    for p in c.processes:
        p.stop()
    redis.stop()


@pytest.fixture
def operator(transactional_db, django_user_model):
    return django_user_model.objects.create_superuser("operator", "op@example.com", "pw")


def undisturbed_sha(cluster) -> str:
    if "sha" not in _reference:
        job = cluster.wait(cluster.submit())
        assert job.status == Status.SUCCEEDED, job.error
        _reference["sha"] = job.checkpoints.get(kind="final").sha256
    return _reference["sha"]


def assert_same_result_counted_once(job: Job, reference: str) -> None:
    assert job.status == Status.SUCCEEDED, f"{job.status}: {job.error}"
    assert job.checkpoints.get(kind="final").sha256 == reference
    tasks = list(job.tasks.all())
    assert len(tasks) == job.total_tasks == len({(t.epoch, t.shard) for t in tasks})
    assert all(t.status == Status.SUCCEEDED for t in tasks)
    assert job.completed_tasks == job.total_tasks
    assert list(job.epoch_metrics.values_list("epoch", flat=True)) == [1, 2, 3, 4]
