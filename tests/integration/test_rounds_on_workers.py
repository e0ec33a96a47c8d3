"""Rounds on real workers: a 4-shard job with sync_every_steps and the nesterov outer
optimizer on two `celery worker` processes (PostgreSQL, Redis, SeaweedFS S3), one of them
killed in the middle of a round. The reconciler sends the lost shard again, another
worker trains it from the round's global state in storage (its own memory never held
it), and the job ends with the final checkpoint of an undisturbed run, every shard of
every round counted once. The chaos tests' cluster (tests/integration/chaos.py)."""

from __future__ import annotations

import time

import pytest

from jobs.models import Job, Status, Task
from tests.processes import wait_for

pytestmark = pytest.mark.integration

# 128,000 training samples, 4 shards of 32,000, batch 32: 1,000 steps a shard an epoch;
# H = 400 gives 3 rounds an epoch (400, 400, 200 steps), a round's shard about half a second.
SPEC = dict(
    name="rounds-on-workers",
    model_type="mlp",
    dataset="synthetic",
    dataset_size=160_000,
    num_workers=4,
    epochs=2,
    batch_size=32,
    learning_rate=0.001,
    optimizer="adam",
    threads=1,
    seed=17,
    sync_every_steps=400,
    outer_optimizer="nesterov",
    outer_learning_rate=0.7,
    outer_momentum=0.9,
)
ROUNDS = 3


def submit(cluster) -> Job:
    """Submit through the spec validator and the lifecycle in a process with the cluster's settings."""
    code = (
        "from django.contrib.auth import get_user_model\n"
        "from django.db import transaction\n"
        "from jobs.services.lifecycle import job_create\n"
        "from jobs.specs import job_spec_validate\n"
        "owner = get_user_model().objects.filter(is_superuser=True).first()\n"
        f"spec = job_spec_validate(owner=owner, data={SPEC!r})\n"
        "with transaction.atomic():\n"
        "    job = job_create(owner=owner, spec=spec)\n"
        "print(job.id)\n"
    )
    return Job.objects.get(id=cluster.manage("shell", "-c", code).strip().splitlines()[-1])


def assert_every_round_counted_once(job: Job) -> None:
    assert job.status == Status.SUCCEEDED, f"{job.status}: {job.error}"
    assert job.rounds_per_epoch == ROUNDS and job.completed_rounds == ROUNDS * SPEC["epochs"]
    tasks = list(job.tasks.all())
    expected = SPEC["num_workers"] * SPEC["epochs"] * ROUNDS
    assert len(tasks) == len({(t.epoch, t.round, t.shard) for t in tasks}) == expected == job.total_tasks
    assert all(t.status == Status.SUCCEEDED for t in tasks)
    assert job.completed_tasks == expected
    assert list(job.epoch_metrics.values_list("epoch", flat=True)) == [1, 2]


def test_a_worker_killed_mid_round_changes_nothing(cluster, operator):
    reference = cluster.wait(submit(cluster))
    assert_every_round_counted_once(reference)
    assert reference.val_accuracy > 0.5, reference.val_accuracy  # 10 classes: it learns

    job = submit(cluster)
    victim = cluster.workers[0]

    def mid_round_shard_on_victim():
        return (
            Task.objects.filter(job=job, status=Status.RUNNING, worker=victim.hostname, epoch=1, round__gte=2).first()
            or Task.objects.filter(job=job, status=Status.RUNNING, worker=victim.hostname, epoch=2).first()
        )

    task = wait_for(mid_round_shard_on_victim, timeout=120, interval=0.02, what="a shard of a later round running")
    time.sleep(0.15)  # inside the shard's half second of training
    victim.kill()
    try:
        job = cluster.wait(job, timeout=240)
        assert_every_round_counted_once(job)
        assert job.checkpoints.get(kind="final").sha256 == reference.checkpoints.get(kind="final").sha256
        task.refresh_from_db()
        assert task.attempts >= 2 and task.worker != victim.hostname  # another worker trained it
    finally:
        victim.start()
