"""Faults that compound (issue 15): a job that diverges, deletion from the admin, a queue
nobody serves."""

from __future__ import annotations

import time
from io import StringIO

import pytest
from django.core.management import call_command

from jobs import queue_consumers, selectors
from jobs.models import Job, Status, Task
from jobs.queue_consumers import Worker
from jobs.services import launch, lifecycle
from storage_app.blobs import blob_write, checkpoint_key, shard_optimizer_key, shard_weights_key
from storage_app.models import Checkpoint
from tests.factories import JobFactory, UserFactory

DIVERGING = dict(
    name="diverges",
    model_type="mlp",
    dataset="wine",
    num_workers=2,
    epochs=4,
    batch_size=16,
    learning_rate=10.0,
    optimizer="sgd",
    momentum=0.0,
    seed=0,
    queue="cpu",
    threads=1,
)


def _run_as_on_a_worker(user, spec, eager_celery, capture) -> Job:
    # As on a worker: a task's failure goes to its on_failure, not up the caller's stack.
    eager_celery.conf.task_eager_propagates = False  # the fixture puts it back
    with capture(execute=True):
        job = lifecycle.job_create(owner=user, spec=spec)
    job.refresh_from_db()
    return job


# --- a job that diverges ---------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_diverging_job_fails_saying_where_the_loss_became_nan_and_that_resume_will_not_help(
    api, user, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    job = _run_as_on_a_worker(user, DIVERGING, eager_celery, django_capture_on_commit_callbacks)

    assert job.status == Status.FAILED
    assert job.error_class == "diverged"
    assert job.error.startswith("loss became NaN at epoch 2, shard 0."), job.error
    assert "resuming the same spec will not help" in job.error and "lower learning_rate" in job.error
    assert "The checkpoint of epoch 1, the last with finite weights, is kept." in job.error
    assert job.checkpoints.filter(epoch=1).exists() and not job.checkpoints.filter(epoch__gte=2).exists()
    failed = job.tasks.get(status=Status.FAILED)
    assert (failed.epoch, failed.shard, failed.error_class) == (2, 0, "diverged")

    body = api.get(f"/api/v1/jobs/{job.id}").json()  # no NaN anywhere that JSON cannot carry
    assert body["error_class"] == "diverged" and body["status"] == "failed"


@pytest.mark.django_db(transaction=True)
def test_a_diverged_job_cannot_resume_and_the_answer_says_why(
    api, user, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    job = _run_as_on_a_worker(user, DIVERGING, eager_celery, django_capture_on_commit_callbacks)
    assert not selectors.job_is_resumable(job)

    r = api.post(f"/api/v1/jobs/{job.id}/resume")
    assert r.status_code == 409
    assert "diverged" in r.json()["status"][0] and "lower learning_rate" in r.json()["status"][0]
    job.refresh_from_db()
    assert job.status == Status.FAILED and job.error_class == "diverged"


def test_only_a_failure_a_resume_can_fix_is_resumable(db):
    failed = JobFactory(status=Status.FAILED, epochs=3, completed_epochs=1, error_class="worker_lost")
    diverged = JobFactory(status=Status.FAILED, epochs=3, completed_epochs=1, error_class="diverged")
    assert selectors.job_resume_refusal(failed) is None
    assert "diverge" in selectors.job_resume_refusal(diverged)


def test_the_dashboard_offers_no_resume_for_a_diverged_job(client, user):
    user.save()  # the session checks the password against the row
    job = JobFactory(owner=user, status=Status.FAILED, epochs=3, completed_epochs=1, error_class="diverged")
    client.force_login(user)
    page = client.get(f"/dashboard/jobs/{job.id}/").content.decode()
    assert 'id="resume"' not in page
    assert "lower learning_rate" in page


def test_a_non_finite_loss_or_weight_is_named():
    import torch

    from workers.errors import Diverged, classify, describe
    from workers.training import first_non_finite

    assert first_non_finite({"a": torch.ones(2), "b": torch.tensor([1.0, float("inf")])}) == "b"
    assert first_non_finite({"a": torch.ones(2), "steps": torch.tensor([2**40])}) is None
    exc = Diverged("loss became NaN at epoch 2, shard 1")
    assert classify(exc) == "diverged" and describe(exc) == "loss became NaN at epoch 2, shard 1"


def test_training_stops_at_the_first_check_after_the_loss_became_nan():
    import torch
    from torch import nn

    from workers.training import LossNotFinite, shard_generator, train_epoch

    model = nn.Linear(4, 3)
    with torch.no_grad():
        model.weight.fill_(float("nan"))
    batches = []
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    real_step = optimizer.step
    optimizer.step = lambda: (batches.append(1), real_step())[1]  # type: ignore[method-assign]
    x, y = torch.randn(640, 4), torch.randint(0, 3, (640,))
    with pytest.raises(LossNotFinite, match="loss became NaN"):
        train_epoch(model, optimizer, x, y, batch_size=8, generator=shard_generator(0, 1, 0), check_every_s=0.0)
    assert len(batches) == 1  # checked after the first batch, not after all 80


# --- every way of deleting a job removes its objects from storage -----------------------


def _job_with_files(owner, status=Status.SUCCEEDED) -> Job:
    """A job with an epoch and a final checkpoint, optimiser states and a shard's weights."""
    job = JobFactory(owner=owner, status=status, epochs=2, completed_epochs=2)
    for epoch, kind in ((2, "epoch"), (2, "final")):
        key = blob_write(checkpoint_key(job.id, epoch, kind), b"c" * 32)
        Checkpoint.objects.create(job=job, epoch=epoch, kind=kind, file=key, sha256="0" * 64, size=32)
    for shard in range(job.num_workers):
        Task.objects.create(job=job, epoch=2, shard=shard, status=Status.SUCCEEDED)
        blob_write(shard_optimizer_key(job.id, 2, shard), b"o" * 32)
    blob_write(shard_weights_key(job.id, 2, 0), b"w" * 32)
    return job


def _stored(local_storage, job) -> list[str]:
    return sorted(p.name for p in (local_storage / "jobs" / str(job.id)).rglob("*") if p.is_file())


@pytest.mark.django_db(transaction=True)
def test_deleting_a_job_in_the_admin_removes_its_checkpoints_and_optimizer_states(admin_client, local_storage):
    job = _job_with_files(UserFactory())
    assert len(_stored(local_storage, job)) == 5

    r = admin_client.post(f"/admin/jobs/job/{job.id}/delete/", {"post": "yes"})
    assert r.status_code == 302
    assert not Job.objects.filter(id=job.id).exists()
    assert _stored(local_storage, job) == []


@pytest.mark.django_db(transaction=True)
def test_the_admins_delete_selected_removes_every_selected_jobs_objects(admin_client, local_storage):
    owner = UserFactory()
    jobs = [_job_with_files(owner), _job_with_files(owner, status=Status.FAILED)]

    r = admin_client.post(
        "/admin/jobs/job/",
        {"action": "delete_selected", "_selected_action": [str(j.id) for j in jobs], "post": "yes"},
    )
    assert r.status_code == 302
    assert Job.objects.count() == 0
    assert [_stored(local_storage, j) for j in jobs] == [[], []]


@pytest.mark.django_db(transaction=True)
def test_the_admin_refuses_to_delete_an_active_job_as_the_api_does(admin_client, local_storage):
    running = _job_with_files(UserFactory(), status=Status.RUNNING)
    done = _job_with_files(running.owner)

    r = admin_client.post(f"/admin/jobs/job/{running.id}/delete/", {"post": "yes"}, follow=True)
    assert "cancel it first" in r.content.decode()
    r = admin_client.post(
        "/admin/jobs/job/",
        {"action": "delete_selected", "_selected_action": [str(running.id), str(done.id)], "post": "yes"},
        follow=True,
    )
    assert "still queued or running; cancel them first" in r.content.decode()
    assert Job.objects.count() == 2 and len(_stored(local_storage, running)) == 5


@pytest.mark.django_db(transaction=True)
def test_deleting_a_user_removes_their_jobs_objects_too(local_storage):
    job = _job_with_files(UserFactory())
    job.owner.delete()  # the jobs go by cascade, not through job_delete
    assert not Job.objects.filter(id=job.id).exists()
    assert _stored(local_storage, job) == []


# --- a queue nobody serves ----------------------------------------------------------------

QUEUED_SPEC = {
    "model_type": "mlp",
    "dataset": "iris",
    "num_workers": 1,
    "epochs": 1,
    "batch_size": 16,
    "learning_rate": 0.01,
    "optimizer": "adam",
}


@pytest.fixture
def fleet(monkeypatch):
    """Workers as the broker would report them (no broadcast), a fresh cache, no launch."""
    asked = []
    online = [Worker(name="w1@host", queues=("cpu",))]

    def ask():
        asked.append(1)
        return list(online)

    monkeypatch.setattr(queue_consumers, "broker_ping", lambda timeout=0: None)
    monkeypatch.setattr(queue_consumers, "ask_workers", ask)
    monkeypatch.setitem(queue_consumers._cache, "at", -1e9)
    monkeypatch.setattr(launch, "job_launch", lambda job_id: None)  # nothing sent to the broker
    return {"online": online, "asked": asked}


def test_a_job_on_a_queue_nobody_consumes_is_told_at_submission_and_while_it_waits(api, fleet):
    r = api.post("/api/v1/jobs", {**QUEUED_SPEC, "queue": "gpu"}, format="json")
    assert r.status_code == 201
    body = r.json()
    assert body["warnings"] == [
        "no worker consumes queue 'gpu'; the job waits until one starts (queues served now: 'cpu')"
    ]
    assert body["waiting_reason"] == "waiting: no worker consumes queue 'gpu'"
    assert api.get(f"/api/v1/jobs/{body['id']}").json()["waiting_reason"] == "waiting: no worker consumes queue 'gpu'"

    served = api.post("/api/v1/jobs", {**QUEUED_SPEC, "queue": "cpu"}, format="json").json()
    assert served["warnings"] == [] and served["waiting_reason"] is None
    assert len(fleet["asked"]) == 1  # one broadcast for all of it, from the cache

    fleet["online"].append(Worker(name="g1@host", queues=("gpu",)))  # a GPU worker starts
    queue_consumers._cache["at"] = -1e9
    assert api.get(f"/api/v1/jobs/{body['id']}").json()["waiting_reason"] is None


def test_a_finished_job_waits_for_nothing(db, fleet):
    assert queue_consumers.job_waiting_reason(JobFactory(queue="gpu", status=Status.SUCCEEDED)) is None
    assert queue_consumers.job_waiting_reason(JobFactory(queue="gpu", status=Status.RUNNING)) is not None


def test_the_cli_prints_the_same_warning(db, fleet):
    UserFactory(is_superuser=True, is_staff=True)
    out, err = StringIO(), StringIO()
    call_command("submit_job", "--model", "mlp", "--dataset", "iris", "--queue", "gpu", stdout=out, stderr=err)
    assert "submitted job" in out.getvalue()
    assert "warning: no worker consumes queue 'gpu'; the job waits until one starts" in err.getvalue()


def test_the_dashboard_job_page_says_why_it_waits(client, user, fleet):
    user.save()
    job = JobFactory(owner=user, queue="gpu", status=Status.QUEUED)
    client.force_login(user)
    assert (
        "waiting: no worker consumes queue &#x27;gpu&#x27;" in client.get(f"/dashboard/jobs/{job.id}/").content.decode()
    )


def test_a_broker_that_does_not_answer_costs_a_submission_little_and_warns_of_nothing(settings, monkeypatch):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    monkeypatch.setitem(queue_consumers._cache, "at", -1e9)
    started = time.monotonic()
    assert queue_consumers.queue_warnings("gpu") == []
    assert queue_consumers.consumed_queues() is None  # the failure is cached: no second try
    assert time.monotonic() - started < 0.5
