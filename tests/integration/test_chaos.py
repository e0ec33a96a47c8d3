"""Nothing is lost: a worker killed mid-shard, Redis restarted empty, storage gone for a
few seconds, a job cancelled and resumed. Each time the job finishes with the same final
checkpoint as an undisturbed run, and no task is counted twice.

A cluster of its own: a Redis on a free port (so restarting it disturbs no other test),
two training workers, the control worker and beat running the reconciler, the shared
SeaweedFS S3 server and the test PostgreSQL database. Jobs are driven with the
management commands, as an operator would from another machine.
"""

from __future__ import annotations

import time

import pytest

from jobs.models import Status, Task
from tests.integration.chaos import assert_same_result_counted_once, undisturbed_sha
from tests.processes import wait_for

pytestmark = pytest.mark.integration


def test_a_worker_killed_mid_shard_loses_nothing(cluster, operator):
    reference = undisturbed_sha(cluster)
    job = cluster.submit()
    victim = cluster.workers[0]
    task = cluster.running_task(job, worker=victim.hostname, min_epoch=2)
    time.sleep(0.3)  # well inside the shard's ~2 s of training
    victim.kill()
    try:
        job = cluster.wait(job)
        assert_same_result_counted_once(job, reference)
        task.refresh_from_db()
        assert task.attempts >= 2 and task.worker != victim.hostname  # another worker finished it
    finally:
        victim.start()


def test_redis_restarted_empty_mid_job_loses_nothing(cluster, operator):
    reference = undisturbed_sha(cluster)
    job = cluster.submit()
    cluster.running_task(job, min_epoch=2)
    cluster.redis.stop()  # every queued message, chord counter and result is gone
    time.sleep(2)
    cluster.redis.start()
    job = cluster.wait(job)
    assert_same_result_counted_once(job, reference)


def test_storage_unreachable_for_seconds_mid_job_loses_nothing(cluster, operator, s3_server):
    reference = undisturbed_sha(cluster)
    job = cluster.submit()
    cluster.running_task(job, min_epoch=2)
    s3_server.kill()
    time.sleep(4)
    s3_server.start()
    job = cluster.wait(job)
    assert_same_result_counted_once(job, reference)


def test_cancel_stops_within_seconds_and_resume_gives_the_same_weights(cluster, operator):
    reference = undisturbed_sha(cluster)
    job = cluster.submit()
    cluster.running_task(job, min_epoch=2)
    cluster.manage("cancel_job", str(job.id))
    started = time.monotonic()  # the job is cancelled in the database from here
    wait_for(lambda: not Task.objects.filter(job=job, status=Status.RUNNING).exists(), timeout=5, what="shards to stop")
    stopped_after = time.monotonic() - started
    job.refresh_from_db()
    assert job.status == Status.CANCELLED and job.completed_epochs < 4
    time.sleep(1.5)  # nothing new starts while cancelled
    assert not Task.objects.filter(job=job, status=Status.RUNNING).exists()
    assert stopped_after < 2, f"running shards took {stopped_after:.1f}s to stop"

    cluster.manage("resume_job", str(job.id))
    job = cluster.wait(job)
    assert_same_result_counted_once(job, reference)
