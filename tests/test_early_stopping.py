"""eval_every and early stopping: which epochs are evaluated, what a job records on the
others, and a job that ends ``succeeded`` early, saying why."""

from __future__ import annotations

import pytest

from jobs import early_stopping, selectors
from jobs.models import EpochMetric, Job, Status, Sweep, Task
from jobs.services import epochs, lifecycle
from storage_app.models import Checkpoint
from tests.factories import JobFactory

# The rule itself -------------------------------------------------------------------------------


def reason(values, metric="val_accuracy", patience=2, min_delta=0.0, every=1):
    history = [(every * (i + 1), v) for i, v in enumerate(values)]
    return early_stopping.stop_reason(history, metric=metric, patience=patience, min_delta=min_delta)


def test_stops_after_patience_evaluations_without_improvement():
    assert reason([0.5, 0.6, 0.6]) is None  # one evaluation without improvement
    assert reason([0.5, 0.6, 0.6, 0.59]) == (
        "val_accuracy did not improve by 0 for 2 evaluations; best 0.6000 at epoch 2"
    )
    assert reason([0.5, 0.6, 0.6, 0.61]) is None  # improved: the count starts again


def test_min_delta_is_the_improvement_that_counts():
    assert reason([0.9, 0.905, 0.909], min_delta=0.01) is not None  # better, but by less than 0.01
    assert reason([0.9, 0.905, 0.911], min_delta=0.01) is None
    text = reason([0.9722, 0.97, 0.972, 0.9721], patience=3, min_delta=0.001, every=5)
    assert text == "val_accuracy did not improve by 0.001 for 3 evaluations; best 0.9722 at epoch 5"


def test_val_loss_improves_downwards():
    assert reason([1.0, 0.8, 0.7], metric="val_loss") is None
    assert reason([1.0, 0.8, 0.9, 0.85], metric="val_loss") == (
        "val_loss did not improve by 0 for 2 evaluations; best 0.8000 at epoch 2"
    )
    with pytest.raises(ValueError, match="unknown early-stopping metric"):
        reason([1.0], metric="train_loss")


# Which epochs evaluate ------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_kth_epoch_the_last_and_a_sweeps_rungs_are_evaluated(user):
    job = JobFactory(owner=user, epochs=7, eval_every=3)
    assert [e for e in range(1, 8) if epochs.epoch_evaluates(job=job, epoch=e)] == [3, 6, 7]
    sweep = Sweep.objects.create(
        owner=user,
        base={},
        space={},
        max_trials=2,
        max_concurrent=1,
        early_stopping={"type": "asha", "grace_epochs": 1, "reduction_factor": 2},
    )
    trial = JobFactory(owner=user, epochs=8, eval_every=4, sweep=sweep, trial_number=1)
    # ASHA judges trials on their validation metric at epochs 1, 2 and 4: those evaluate.
    assert [e for e in range(1, 9) if epochs.epoch_evaluates(job=trial, epoch=e)] == [1, 2, 4, 8]


@pytest.mark.django_db
def test_the_jobs_val_metrics_follow_the_last_evaluated_epoch_whatever_the_order(user):
    job = JobFactory(owner=user, epochs=5, eval_every=2, status=Status.RUNNING)

    def record(epoch, accuracy=None):
        loss = None if accuracy is None else 1 - accuracy
        epochs.epoch_record(
            job_id=job.id,
            epoch=epoch,
            train_loss=1.0 / epoch,
            val_loss=loss,
            val_accuracy=accuracy,
            samples=10,
            duration_s=1.0,
        )
        job.refresh_from_db()

    record(1)
    assert job.completed_epochs == 1 and job.train_loss == 1.0 and job.val_accuracy is None
    record(4, 0.8)
    record(3)  # late, not evaluated: the train loss stays epoch 4's
    assert (job.train_loss, job.val_accuracy, job.val_loss) == (0.25, 0.8, pytest.approx(0.2))
    record(2, 0.9)  # late and evaluated: the best, but not the latest evaluation
    assert (job.val_accuracy, job.best_val_accuracy) == (0.8, 0.9)
    record(5, 0.85)
    assert job.status == Status.SUCCEEDED and job.val_accuracy == 0.85 and job.stop_reason == ""


# A job that stops early, on the eager pipeline ------------------------------------------------------

SPEC = dict(
    name="stops",
    model_type="mlp",
    dataset="wine",
    num_workers=2,
    epochs=8,
    batch_size=16,
    learning_rate=0.01,
    optimizer="adam",
    momentum=0.0,
    seed=2,
    queue="cpu",
    threads=1,
    keep_checkpoints=10,
    eval_every=2,
    # No evaluation can beat the first by a whole 1.0: the job stops at its second evaluation.
    early_stopping={"metric": "val_accuracy", "patience": 1, "min_delta": 1.0},
)


def run_job(user, spec, capture) -> Job:
    with capture(execute=True):
        job = lifecycle.job_create(owner=user, spec=spec)
    job.refresh_from_db()
    return job


@pytest.mark.django_db(transaction=True)
def test_a_job_that_stops_improving_ends_succeeded_at_that_epoch_saying_why(
    api, user, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    job = run_job(user, SPEC, django_capture_on_commit_callbacks)

    assert job.status == Status.SUCCEEDED, job.error
    best = job.epoch_metrics.get(epoch=2).val_accuracy
    assert job.stop_reason == f"val_accuracy did not improve by 1 for 1 evaluation; best {best:.4f} at epoch 2"
    assert job.completed_epochs == 4 and job.progress == 1.0
    assert job.completed_tasks == job.total_tasks == 8
    assert not job.tasks.filter(epoch__gt=4).exists()  # no further epoch was launched
    metrics = list(job.epoch_metrics.values_list("epoch", "val_accuracy"))
    assert [e for e, _ in metrics] == [1, 2, 3, 4] and metrics[0][1] is None and metrics[2][1] is None
    assert job.val_accuracy == metrics[3][1]
    # Every epoch's checkpoint was written (the next started from it); the final is epoch 4's weights.
    assert set(job.checkpoints.filter(kind=Checkpoint.Kind.EPOCH).values_list("epoch", flat=True)) == {1, 2, 3, 4}
    assert job.checkpoints.get(kind=Checkpoint.Kind.EPOCH, epoch=1).val_accuracy is None
    final = job.checkpoints.get(kind=Checkpoint.Kind.FINAL)
    assert final.epoch == 4 and final.sha256 == job.checkpoints.get(kind=Checkpoint.Kind.EPOCH, epoch=4).sha256
    # Not resumable: it succeeded.
    assert selectors.job_resume_refusal(job) == "job is succeeded; only cancelled or failed jobs resume"
    assert api.post(f"/api/v1/jobs/{job.id}/resume").status_code == 409
    body = api.get(f"/api/v1/jobs/{job.id}").json()
    assert body["stop_reason"] == job.stop_reason and body["progress"] == 1.0

    again = run_job(user, SPEC, django_capture_on_commit_callbacks)
    assert again.checkpoints.get(kind=Checkpoint.Kind.FINAL).sha256 == final.sha256


@pytest.mark.django_db(transaction=True)
def test_without_early_stopping_the_same_job_runs_every_epoch(
    user, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    job = run_job(user, {**SPEC, "early_stopping": None, "epochs": 4}, django_capture_on_commit_callbacks)
    assert job.status == Status.SUCCEEDED and job.stop_reason == "" and job.completed_epochs == 4


@pytest.mark.django_db
def test_stopping_cancels_an_epoch_already_launched(user, monkeypatch, django_capture_on_commit_callbacks):
    revoked = []
    monkeypatch.setattr("jobs.orchestration.revoke", revoked.extend)
    job = JobFactory(owner=user, epochs=5, num_workers=2, status=Status.RUNNING, completed_tasks=6)
    Task.objects.create(job=job, epoch=4, shard=0, status=Status.QUEUED, celery_id="m-4-0")
    Task.objects.create(job=job, epoch=4, shard=1, status=Status.RUNNING, celery_id="m-4-1", attempts=1)
    with django_capture_on_commit_callbacks(execute=True):
        epochs.epoch_record(
            job_id=job.id,
            epoch=3,
            train_loss=0.5,
            val_loss=0.5,
            val_accuracy=0.7,
            samples=10,
            duration_s=1.0,
            stop_reason="val_accuracy did not improve by 0 for 1 evaluation; best 0.7000 at epoch 3",
        )
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED and job.finished_at and job.stop_reason.startswith("val_accuracy")
    assert job.progress == 1.0 and job.total_tasks == 6
    assert set(job.tasks.filter(epoch=4).values_list("status", flat=True)) == {Status.CANCELLED}
    assert revoked == ["m-4-0"]  # the running shard stops at its next heartbeat


@pytest.mark.django_db
def test_a_late_aggregate_of_a_job_that_succeeded_records_nothing(user, local_storage):
    job = JobFactory(owner=user, epochs=5, status=Status.SUCCEEDED, stop_reason="stopped", completed_epochs=3)
    result = epochs.EpochResult(epoch=4, checkpoint=b"x", train_loss=0.1, samples=10, duration_s=1.0)
    epochs.epoch_finished(job=job, result=result)
    assert not EpochMetric.objects.filter(job=job).exists() and not job.checkpoints.exists()
