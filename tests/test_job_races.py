"""Cancel, resume and delete racing on one job, from threads with a client each (as
browsers and scripts do): every answer is 2xx, 404 or 409, never a 500, and once a
delete has answered 204 nothing of the job is left in storage."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from jobs.models import Job, Status, Task
from jobs.services import claims, launch, lifecycle
from storage_app.blobs import blob_write, shard_optimizer_key, shard_weights_key
from tests.factories import JobFactory

ROUNDS = 6
ACTIONS = ("cancel", "resume", "delete", "cancel", "resume", "delete")


@pytest.fixture
def broker_emptied():
    """Resumes send real messages to the test broker (no worker consumes them): drop them."""
    yield
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()


def _stored_job(owner) -> Job:
    """A cancelled job after its first of three epochs: task rows and shard files in storage."""
    job = JobFactory(owner=owner, status=Status.CANCELLED, epochs=3, completed_epochs=1, current_epoch=2)
    for epoch in (1, 2):
        for shard in range(job.num_workers):
            status = Status.SUCCEEDED if epoch == 1 else Status.CANCELLED
            Task.objects.create(job=job, epoch=epoch, shard=shard, status=status)
            blob_write(shard_weights_key(job.id, epoch, shard), b"w" * 64)
            blob_write(shard_optimizer_key(job.id, epoch, shard), b"o" * 64)
    return job


def _fire(user, job_id, action: str, barrier: threading.Barrier) -> tuple[str, int, str]:
    client = APIClient()
    client.raise_request_exception = False  # a 500 is an answer to count, as a browser would get it
    client.force_authenticate(user=user)
    url = f"/api/v1/jobs/{job_id}"
    try:
        barrier.wait(timeout=30)
        if action == "delete":
            r = client.delete(url)
        else:
            r = client.post(f"{url}/{action}")
        return action, r.status_code, r.content[:300].decode(errors="replace")
    finally:
        connection.close()  # this thread's connection, before the test database is flushed


@pytest.mark.django_db(transaction=True)
def test_cancel_resume_and_delete_racing_never_answer_500_nor_leave_files(user, local_storage, broker_emptied):
    answers = []
    deleted = []
    for _ in range(ROUNDS):
        job = _stored_job(user)
        barrier = threading.Barrier(len(ACTIONS))
        with ThreadPoolExecutor(len(ACTIONS)) as pool:
            round_answers = list(pool.map(lambda a, j=job, b=barrier: _fire(user, j.id, a, b), ACTIONS))
        answers += round_answers
        if any(a == "delete" and code == 204 for a, code, _ in round_answers):
            deleted.append(job.id)

    errors = [a[:2] for a in answers if a[1] not in (200, 202, 204, 404, 409)]
    assert errors == []
    assert deleted, "no round deleted its job: the test raced nothing"
    for job_id in deleted:
        assert not Job.objects.filter(id=job_id).exists()
        left = sorted(str(p.relative_to(local_storage)) for p in (local_storage / "jobs" / str(job_id)).rglob("*"))
        assert [p for p in left if (local_storage / p).is_file()] == []


SPEC = dict(
    model_type="mlp",
    dataset="iris",
    num_workers=2,
    epochs=2,
    batch_size=16,
    learning_rate=0.01,
    optimizer="adam",
    seed=1,
    queue="cpu",
    threads=1,
)


def _unlaunched(user, monkeypatch) -> Job:
    with monkeypatch.context() as m:
        m.setattr(launch, "job_launch", lambda job_id: None)
        job = lifecycle.job_create(owner=user, spec=SPEC)
    Job.objects.filter(id=job.id).update(status=Status.RUNNING)
    return job


def _files_of(local_storage, job_id) -> list[str]:
    return sorted(p.name for p in (local_storage / "jobs" / str(job_id)).rglob("*") if p.is_file())


@pytest.mark.django_db(transaction=True)
def test_a_shard_whose_job_is_deleted_while_it_trains_leaves_no_file(user, local_storage, monkeypatch):
    """The delete's sweep ran before the worker wrote its weights: the worker, told its
    result has no row to go to, sweeps what it wrote."""
    from workers import steps

    job = _unlaunched(user, monkeypatch)
    claims.epoch_tasks_dispatch(job=job, epoch=1)
    real_train = steps.train_epoch

    def deleted_meanwhile(*args, **kwargs):
        Job.objects.filter(id=job.id).delete()  # as a racing delete (or its owner's) would
        return real_train(*args, **kwargs)

    monkeypatch.setattr(steps, "train_epoch", deleted_meanwhile)
    steps.shard_step(job_id=job.id, epoch=1, shard=0, worker="w1@host")
    assert _files_of(local_storage, job.id) == []


@pytest.mark.django_db(transaction=True)
def test_an_aggregate_whose_job_is_deleted_meanwhile_leaves_no_checkpoint(user, local_storage, monkeypatch):
    from workers import steps

    job = _unlaunched(user, monkeypatch)
    claims.epoch_tasks_dispatch(job=job, epoch=1)
    for shard in range(2):
        steps.shard_step(job_id=job.id, epoch=1, shard=shard, worker="w1@host")
    real_finished = steps.epochs.epoch_finished

    def deleted_meanwhile(**kwargs):
        Job.objects.filter(id=job.id).delete()
        return real_finished(**kwargs)

    monkeypatch.setattr(steps.epochs, "epoch_finished", deleted_meanwhile)
    assert steps.aggregate_step(job_id=job.id, epoch=1) == {"skipped": True}
    assert _files_of(local_storage, job.id) == []
