"""Resume, the reconciler's rules and failure classes, with Celery in-process.
The same behaviour against real workers, Redis and S3 is in tests/integration/test_chaos.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Job, Status, Task
from jobs.reconcile import reconcile
from jobs.services import claims, launch, lifecycle
from workers.errors import classify

pytestmark = pytest.mark.django_db(transaction=True)

SPEC = dict(
    name="r",
    model_type="mlp",
    dataset="iris",
    num_workers=2,
    epochs=4,
    batch_size=16,
    learning_rate=0.01,
    optimizer="adam",
    momentum=0.0,
    seed=5,
    queue="cpu",
    threads=1,
    keep_checkpoints=3,
)


def final_sha(job: Job) -> str:
    return job.checkpoints.get(kind="final").sha256


def create_unlaunched(user, spec, monkeypatch) -> Job:
    """A job whose on-commit launch never happened (as when the broker was down)."""
    with monkeypatch.context() as m:
        m.setattr(launch, "job_launch", lambda job_id: None)
        return lifecycle.job_create(owner=user, spec=spec)


@pytest.fixture
def fresh_broker():
    """The real Redis test database, emptied: no message is pending."""
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()


def test_cancel_between_epochs_then_resume_gives_the_same_weights(
    user, eager_celery, local_storage, monkeypatch, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        reference = lifecycle.job_create(owner=user, spec=SPEC)
    reference.refresh_from_db()

    real_launch = launch.epoch_launch

    def cancel_before_epoch_3(job_id, epoch):
        if epoch == 3:
            lifecycle.job_cancel(job=Job.objects.get(id=job_id))
        return real_launch(job_id, epoch)

    monkeypatch.setattr(launch, "epoch_launch", cancel_before_epoch_3)
    with django_capture_on_commit_callbacks(execute=True):
        job = lifecycle.job_create(owner=user, spec=SPEC)
    job.refresh_from_db()
    assert job.status == Status.CANCELLED and job.completed_epochs == 2
    monkeypatch.setattr(launch, "epoch_launch", real_launch)

    with django_capture_on_commit_callbacks(execute=True):
        restart = lifecycle.job_resume(job=job)  # launches its restart epoch itself
    job.refresh_from_db()
    assert restart == 3 and job.status == Status.SUCCEEDED
    assert final_sha(job) == final_sha(reference)
    assert job.completed_tasks == job.tasks.filter(status=Status.SUCCEEDED).count() == 8


def test_only_cancelled_or_failed_jobs_resume(api, user):
    from tests.factories import JobFactory

    running = JobFactory(owner=user, status=Status.RUNNING)
    r = api.post(f"/api/v1/jobs/{running.id}/resume")
    assert r.status_code == 409 and "running" in r.json()["status"][0]


def test_stale_running_shard_is_sent_again_and_the_epoch_completes(
    user, eager_celery, local_storage, settings, fresh_broker, monkeypatch
):
    settings.TENSORFLEET_REDISPATCH_AFTER = 0
    job = create_unlaunched(user, {**SPEC, "epochs": 1}, monkeypatch)
    Job.objects.filter(id=job.id).update(status=Status.RUNNING)
    claims.epoch_tasks_dispatch(job=job, epoch=1)
    long_ago = timezone.now() - timedelta(minutes=10)
    Task.objects.filter(job=job, shard=0).update(
        status=Status.RUNNING, attempts=1, heartbeat_at=long_ago, worker="dead@host"
    )
    Task.objects.filter(job=job, shard=1).update(dispatched_at=long_ago)  # queued; its message is not in the broker

    first = reconcile()
    assert first == {"redispatched_stale": 1, "redispatched_lost": 1}
    assert set(job.tasks.values_list("status", flat=True)) == {Status.SUCCEEDED}
    assert job.tasks.get(shard=0).attempts == 2  # a new attempt, counted once
    job.refresh_from_db()  # the shards, sent outside a chord, aggregated the epoch themselves
    assert job.status == Status.SUCCEEDED and job.completed_tasks == 2
    assert reconcile() == {}


def test_an_epoch_whose_aggregate_was_lost_is_aggregated(
    user, eager_celery, local_storage, settings, fresh_broker, monkeypatch
):
    settings.TENSORFLEET_REDISPATCH_AFTER = 0
    job = create_unlaunched(user, {**SPEC, "epochs": 1}, monkeypatch)
    with monkeypatch.context() as m:
        m.setattr("workers.steps.aggregate_step", lambda **kw: None)  # as if its message were lost
        launch.epoch_launch(job.id, 1)
    job.refresh_from_db()
    assert job.status == Status.RUNNING and job.completed_tasks == 2 and job.completed_epochs == 0
    assert reconcile() == {"aggregates_dispatched": 1}
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED


def test_a_shard_that_keeps_losing_its_worker_fails_the_job(user, settings, local_storage, monkeypatch):
    job = create_unlaunched(user, SPEC, monkeypatch)
    Job.objects.filter(id=job.id).update(status=Status.RUNNING)
    claims.epoch_tasks_dispatch(job=job, epoch=1)
    Task.objects.filter(job=job, shard=1).update(
        status=Status.RUNNING,
        attempts=5,
        lost=settings.TENSORFLEET_MAX_ATTEMPTS - 1,
        worker="w9@host",
        heartbeat_at=timezone.now() - timedelta(minutes=5),
    )
    assert reconcile()["failed_worker_lost"] == 1
    job.refresh_from_db()
    assert job.status == Status.FAILED and job.error_class == "worker_lost" and "w9@host" in job.error


def test_a_job_whose_launch_was_lost_is_launched(
    user, eager_celery, local_storage, settings, fresh_broker, monkeypatch
):
    settings.TENSORFLEET_REDISPATCH_AFTER = 0
    job = create_unlaunched(user, {**SPEC, "epochs": 2}, monkeypatch)
    assert reconcile() == {"epochs_launched": 1}
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED


def test_a_failing_shard_fails_the_job_with_class_and_traceback(
    api, user, eager_celery, local_storage, monkeypatch, django_capture_on_commit_callbacks
):
    def broken(*args, **kwargs):
        raise ValueError("loss is NaN")

    monkeypatch.setattr("workers.steps.train_epoch", broken)
    # As on a worker: the failure goes to the task's on_failure instead of up the caller's stack.
    eager_celery.conf.task_eager_propagates = False  # the fixture puts it back
    with django_capture_on_commit_callbacks(execute=True):
        job = lifecycle.job_create(owner=user, spec=SPEC)
    body = api.get(f"/api/v1/jobs/{job.id}").json()
    assert body["status"] == "failed" and body["error_class"] == "user_error"
    assert "shard" in body["error"] and "loss is NaN" in body["error"]
    assert "Traceback" in body["traceback"]
    task = job.tasks.get(epoch=1, status="failed")
    assert task.error_class == "user_error"


def test_errors_are_classified():
    from botocore.exceptions import EndpointConnectionError
    from celery.exceptions import SoftTimeLimitExceeded, WorkerLostError

    assert classify(EndpointConnectionError(endpoint_url="http://s3")) == "infrastructure"
    assert classify(WorkerLostError()) == "worker_lost"
    assert classify(SoftTimeLimitExceeded()) == "time_limit"
    assert classify(MemoryError()) == "out_of_memory"
    assert classify(ValueError("bad")) == "user_error"
