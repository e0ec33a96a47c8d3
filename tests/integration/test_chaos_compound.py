"""Faults that compound, at moments the test does not choose by hand: every worker
killed while an aggregate runs, the reconciler's own worker down while a training worker
dies, Redis restarted while storage is down, a storage blip then every worker restarted
while their retries wait out a countdown, and random kills. Each time the job ends with
the same final checkpoint as an undisturbed run, counted once (tests/integration/
chaos.py has the cluster, test_chaos.py the single faults)."""

from __future__ import annotations

import random
import time

import pytest

from jobs.models import EpochMetric, Status, Task
from tests.integration.chaos import assert_same_result_counted_once, undisturbed_sha
from tests.processes import wait_for

pytestmark = pytest.mark.integration


def aggregating(job, epoch: int) -> bool:
    """Every shard of ``epoch`` succeeded and the epoch is not recorded yet: its aggregate runs."""
    done = Task.objects.filter(job=job, epoch=epoch, status=Status.SUCCEEDED).count()
    return done == job.num_workers and not EpochMetric.objects.filter(job=job, epoch=epoch).exists()


def test_every_worker_killed_during_an_aggregate_loses_nothing(cluster, operator):
    reference = undisturbed_sha(cluster)
    job = cluster.submit()
    wait_for(lambda: aggregating(job, 2), timeout=90, interval=0.01, what="epoch 2's aggregate")
    for worker in cluster.workers:
        worker.kill()
    time.sleep(1)
    for worker in cluster.workers:
        worker.start()
    assert_same_result_counted_once(cluster.wait(job), reference)


def test_the_reconcilers_worker_down_while_a_training_worker_dies(cluster, operator):
    reference = undisturbed_sha(cluster)
    job = cluster.submit()
    victim = cluster.workers[0]
    cluster.running_task(job, worker=victim.hostname, min_epoch=2)
    cluster.control.kill()
    cluster.beat.kill()
    victim.kill()
    time.sleep(4)  # longer than the heartbeat timeout: nobody is there to notice yet
    cluster.control.start()
    cluster.beat.start()
    victim.start()
    assert_same_result_counted_once(cluster.wait(job), reference)


def test_redis_restarted_while_storage_is_down(cluster, operator, s3_server):
    reference = undisturbed_sha(cluster)
    job = cluster.submit()
    cluster.running_task(job, min_epoch=2)
    s3_server.kill()
    time.sleep(1)
    cluster.redis.stop()
    time.sleep(1)
    cluster.redis.start()
    time.sleep(2)
    s3_server.start()
    assert_same_result_counted_once(cluster.wait(job), reference)


def test_a_storage_blip_then_every_worker_restarted_waits_no_longer_than_the_heartbeat(cluster, operator, s3_server):
    """Shards that were waiting out a retry's countdown when every worker died stay in
    Redis's unacknowledged set for the visibility timeout (hours); the reconciler sends them
    again once no live worker holds them."""
    reference = undisturbed_sha(cluster)
    job = cluster.submit()
    cluster.running_task(job, min_epoch=2)
    s3_server.kill()
    wait_for(
        lambda: Task.objects.filter(job=job, error__startswith="retrying").exists(),
        timeout=60,
        interval=0.1,
        what="a shard retrying after the storage error",
    )
    for worker in cluster.workers:
        worker.kill()
    s3_server.start()
    time.sleep(1)
    for worker in cluster.workers:
        worker.start()
    started = time.monotonic()
    job = cluster.wait(job, timeout=120)
    assert_same_result_counted_once(job, reference)
    assert time.monotonic() - started < 90


def test_workers_killed_at_random_moments(cluster, operator):
    reference = undisturbed_sha(cluster)
    rng = random.Random(20261130)
    job = cluster.submit()
    cluster.running_task(job)
    for _ in range(2):
        time.sleep(rng.uniform(0.2, 2.5))
        victim = rng.choice(cluster.workers)
        victim.kill()
        time.sleep(rng.uniform(0.0, 1.0))
        victim.start()
    assert_same_result_counted_once(cluster.wait(job), reference)
