"""The broker, as the platform leaves it: messages held by a dead worker do not keep a
job waiting, a cancelled job's messages leave the queue, and a user's backlog does not
starve another user's first job. Real Redis (the test broker database)."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from jobs import orchestration, pending_messages
from jobs.models import Job, Status, Task
from jobs.reconcile import reconcile
from jobs.services import claims, launch, lifecycle
from tests.factories import JobFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

SPEC = dict(
    name="b", model_type="mlp", dataset="iris", num_workers=2, epochs=1, batch_size=16, learning_rate=0.01,
    optimizer="adam", momentum=0.0, seed=5, queue="cpu", threads=1, keep_checkpoints=3,
)  # fmt: skip


@pytest.fixture
def broker():
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.flushdb()
    yield client
    client.flushdb()


def unlaunched(user, monkeypatch, **changes) -> Job:
    with monkeypatch.context() as m:
        m.setattr(launch, "job_launch", lambda job_id: None)
        return lifecycle.job_create(owner=user, spec={**SPEC, **changes})


def hold_in_unacked(client, celery_id: str, *, delivered_s_ago: float) -> None:
    """What kombu writes when a worker takes a message (a retry waiting out its countdown
    included): the message under a delivery tag, and when it was delivered."""
    tag = uuid.uuid4().hex
    message = {"headers": {"id": celery_id, "task": "workers.train_shard"}, "properties": {"delivery_tag": tag}}
    client.hset("unacked", tag, json.dumps([message, "", "cpu"]))
    client.zadd("unacked_index", {tag: time.time() - delivered_s_ago})


def test_a_shard_held_by_a_dead_worker_is_sent_again_after_the_heartbeat_timeout(
    user, eager_celery, local_storage, settings, broker, monkeypatch
):
    settings.TENSORFLEET_REDISPATCH_AFTER = 0
    settings.TENSORFLEET_HEARTBEAT_TIMEOUT = 60
    job = unlaunched(user, monkeypatch)
    Job.objects.filter(id=job.id).update(status=Status.RUNNING)
    ids = claims.epoch_tasks_dispatch(job=job, epoch=1)
    Task.objects.filter(job=job).update(dispatched_at=timezone.now() - timedelta(minutes=5))
    for celery_id in ids.values():  # both retries sat in a worker's ETA queue when it was killed
        hold_in_unacked(broker, celery_id, delivered_s_ago=120)
    monkeypatch.setattr(pending_messages, "ids_held_by_live_workers", lambda: set())  # every worker is gone

    assert reconcile() == {"redispatched_orphaned": 2}
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED  # the shards, sent again, trained and aggregated


def test_a_shard_a_live_worker_holds_or_just_took_is_left_alone(user, settings, broker, monkeypatch):
    settings.TENSORFLEET_REDISPATCH_AFTER = 0
    settings.TENSORFLEET_HEARTBEAT_TIMEOUT = 60
    job = unlaunched(user, monkeypatch)
    Job.objects.filter(id=job.id).update(status=Status.RUNNING)
    ids = claims.epoch_tasks_dispatch(job=job, epoch=1)
    Task.objects.filter(job=job).update(dispatched_at=timezone.now() - timedelta(minutes=5))
    hold_in_unacked(broker, ids[0], delivered_s_ago=120)  # a live worker waits out its countdown
    hold_in_unacked(broker, ids[1], delivered_s_ago=5)  # taken moments ago
    monkeypatch.setattr(pending_messages, "ids_held_by_live_workers", lambda: {ids[0]})
    assert reconcile() == {}
    monkeypatch.setattr(pending_messages, "ids_held_by_live_workers", lambda: None)  # workers could not be asked
    assert reconcile() == {}


def test_cancelling_a_job_takes_its_messages_out_of_the_queue(user, settings, broker, monkeypatch):
    queue = f"q-{uuid.uuid4().hex[:8]}"
    job = unlaunched(user, monkeypatch, queue=queue, num_workers=3)
    other = unlaunched(user, monkeypatch, queue=queue, num_workers=1)
    monkeypatch.setattr(orchestration, "revoke", lambda ids: None)  # no worker to broadcast to
    launch.epoch_launch(job.id, 1)
    launch.epoch_launch(other.id, 1)
    lengths = lambda: sum(broker.llen(queue + s) for s in pending_messages.PRIORITY_SUFFIXES)  # noqa: E731
    assert lengths() == 4
    lifecycle.job_cancel(job=Job.objects.get(id=job.id))
    assert lengths() == 1  # only the other job's shard is left
    held = pending_messages.pending_message_ids([queue])
    assert held == {other.tasks.get().celery_id}


def test_a_users_backlog_does_not_starve_another_users_first_job(settings, broker, monkeypatch):
    queue = f"q-{uuid.uuid4().hex[:8]}"
    greedy, newcomer = UserFactory(), UserFactory()
    backlog = [unlaunched(greedy, monkeypatch, queue=queue, num_workers=1) for _ in range(20)]
    for job in backlog:
        launch.epoch_launch(job.id, 1)
    first = unlaunched(newcomer, monkeypatch, queue=queue, num_workers=1)
    launch.epoch_launch(first.id, 1)
    # Workers BRPOP the step-0 list first (kombu's Redis transport), then 3, 6, 9.
    order = [f"{queue}{suffix}" for suffix in pending_messages.PRIORITY_SUFFIXES]
    taken = []
    while len(taken) < 4:
        _, raw = broker.brpop(order, timeout=1)
        taken.append(pending_messages._message_id(raw))
    newcomer_id = first.tasks.get().celery_id
    greedy_first = backlog[0].tasks.get().celery_id
    assert taken[0] == greedy_first  # sent while the greedy user had nothing waiting
    assert newcomer_id in taken[:2], "the newcomer's first job went behind the greedy user's backlog"
    assert [launch.dispatch_priority(j) for j in (backlog[0], first)] == [9, 0]


def test_dispatch_priority_grows_with_the_owners_waiting_jobs(user):
    jobs = [JobFactory(owner=user, queue="cpu") for _ in range(17)]
    for job in jobs:
        Task.objects.create(job=job, epoch=1, shard=0, status=Status.QUEUED)
    steps = []
    for waiting in (0, 1, 4, 16):
        Task.objects.filter(status=Status.QUEUED).exclude(job__in=jobs[: waiting + 1]).update(status=Status.SUCCEEDED)
        steps.append(launch.dispatch_priority(jobs[0]))
        Task.objects.update(status=Status.QUEUED)
    assert steps == [0, 3, 6, 9]
