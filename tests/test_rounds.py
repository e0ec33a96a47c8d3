"""Rounds inside an epoch (sync_every_steps) and the outer optimizers, with Celery in-process.
The same against real workers, one of them killed mid-round: tests/integration/test_rounds_on_workers.py."""

from __future__ import annotations

import pytest

from jobs import orchestration, selectors
from jobs.models import Job, Status
from jobs.reconcile import reconcile
from jobs.services import launch, lifecycle
from jobs.specs import SpecInvalid, job_spec_validate

pytestmark = pytest.mark.django_db(transaction=True)

# digits: 1437 training samples, 4 shards of 359-360, batch 32: 12 steps a shard an epoch,
# so H = 4 gives 3 rounds an epoch.
SPEC = dict(
    name="rounds",
    model_type="cnn",
    dataset="digits",
    num_workers=4,
    epochs=3,
    batch_size=32,
    learning_rate=0.003,
    optimizer="adam",
    seed=7,
    queue="cpu",
    threads=1,
    sync_every_steps=4,
    outer_optimizer="nesterov",
    outer_learning_rate=0.7,
    outer_momentum=0.9,
)


def run(user, spec, capture) -> Job:
    with capture(execute=True):
        job = lifecycle.job_create(owner=user, spec=job_spec_validate(owner=user, data=spec))
    job.refresh_from_db()
    return job


def final_sha(job: Job) -> str:
    return job.checkpoints.get(kind="final").sha256


def test_a_four_shard_nesterov_job_trains_in_rounds_and_repeats_bit_for_bit(
    user, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    job = run(user, SPEC, django_capture_on_commit_callbacks)
    assert job.status == Status.SUCCEEDED, job.error
    assert job.rounds_per_epoch == 3 and job.completed_rounds == 9
    assert job.total_tasks == job.completed_tasks == 4 * 3 * 3 and job.progress == 1.0
    rounds = sorted(set(job.tasks.values_list("epoch", "round")))
    assert rounds == [(e, r) for e in (1, 2, 3) for r in (1, 2, 3)]
    assert list(job.epoch_metrics.values_list("epoch", flat=True)) == [1, 2, 3]
    assert job.epoch_metrics.get(epoch=1).samples == 1437  # every round's samples, once
    assert job.val_accuracy >= 0.9, job.val_accuracy
    again = run(user, SPEC, django_capture_on_commit_callbacks)
    assert final_sha(again) == final_sha(job)
    # Only the global state of the last round and the last optimiser states stay in work/.
    work = local_storage / "jobs" / str(job.id) / "work"
    left = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
    assert [p for p in left if p.startswith("rounds/")] == [job.round_state_key.split("/work/")[1]]
    assert [p for p in left if not p.startswith("rounds/")] == [
        f"e0003/r0003/shard-00{s}.optimizer.safetensors" for s in range(4)
    ]


def test_cancel_between_rounds_then_resume_gives_the_same_weights(
    user, eager_celery, local_storage, monkeypatch, django_capture_on_commit_callbacks
):
    spec = {**SPEC, "epochs": 2}
    reference = run(user, spec, django_capture_on_commit_callbacks)
    real_round_launch = launch.round_launch

    def cancel_before_round_2_of_epoch_2(job_id, epoch, round):
        if (epoch, round) == (2, 2):
            lifecycle.job_cancel(job=Job.objects.get(id=job_id))
        return real_round_launch(job_id, epoch, round)

    monkeypatch.setattr(launch, "round_launch", cancel_before_round_2_of_epoch_2)
    job = run(user, spec, django_capture_on_commit_callbacks)
    assert job.status == Status.CANCELLED and job.completed_epochs == 1 and job.completed_rounds == 4
    monkeypatch.setattr(launch, "round_launch", real_round_launch)
    with django_capture_on_commit_callbacks(execute=True):
        restart = lifecycle.job_resume(job=job)
    job.refresh_from_db()
    assert restart == 2 and job.status == Status.SUCCEEDED, job.error
    assert final_sha(job) == final_sha(reference)
    assert job.completed_tasks == job.total_tasks == 4 * 2 * 3


def test_a_round_whose_aggregate_was_lost_is_aggregated_by_the_reconciler(
    user, eager_celery, local_storage, monkeypatch, settings, django_capture_on_commit_callbacks
):
    spec = {**SPEC, "epochs": 1, "num_workers": 2, "sync_every_steps": 12}  # 23 steps a shard: 2 rounds
    reference = run(user, spec, django_capture_on_commit_callbacks)
    assert reference.rounds_per_epoch == 2
    real_send = orchestration.epoch_send

    def lose_round_2s_aggregate(job, epoch, celery_ids, *, priority=0, round=1):
        if round == 2:  # its shards run, its aggregate's message is lost
            for shard in range(job.num_workers):
                orchestration.shard_send(job, epoch, shard, celery_ids[shard], priority=priority, round=round)
            return
        real_send(job, epoch, celery_ids, priority=priority, round=round)

    with monkeypatch.context() as m:
        m.setattr(orchestration, "epoch_send", lose_round_2s_aggregate)
        m.setattr(selectors, "epoch_all_succeeded", lambda **_: False)  # nor does a shard aggregate inline
        job = run(user, spec, django_capture_on_commit_callbacks)
    assert job.status == Status.RUNNING and job.completed_rounds == 1
    assert job.tasks.filter(round=2, status=Status.SUCCEEDED).count() == 2
    settings.TENSORFLEET_REDISPATCH_AFTER = 0
    with django_capture_on_commit_callbacks(execute=True):
        assert reconcile() == {"aggregates_dispatched": 1}
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED and final_sha(job) == final_sha(reference)


def test_without_sync_every_steps_an_epoch_is_one_round_as_before(
    user, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    base = {k: v for k, v in SPEC.items() if not k.startswith(("sync", "outer"))}
    base = {**base, "num_workers": 2, "epochs": 2}
    plain = run(user, base, django_capture_on_commit_callbacks)
    assert plain.rounds_per_epoch == 1 and set(plain.tasks.values_list("round", flat=True)) == {1}
    assert plain.total_tasks == plain.completed_tasks == 4 and not plain.round_state_key
    # H at least an epoch's steps with averaging: one round per epoch, the same bits.
    one_round = run(user, {**base, "sync_every_steps": 1000}, django_capture_on_commit_callbacks)
    assert one_round.rounds_per_epoch == 1 and final_sha(one_round) == final_sha(plain)
    # Nesterov once per epoch: its momentum carries from epoch to epoch, a different result.
    outer = run(user, {**base, "outer_optimizer": "nesterov"}, django_capture_on_commit_callbacks)
    assert outer.status == Status.SUCCEEDED and final_sha(outer) != final_sha(plain)


def test_the_spec_checks_the_round_fields(user):
    ok = job_spec_validate(owner=user, data={"model_type": "mlp", "dataset": "iris"})
    assert ok["sync_every_steps"] is None and ok["outer_optimizer"] == "average"
    assert (ok["outer_learning_rate"], ok["outer_momentum"]) == (0.7, 0.9)
    for field, value in (("sync_every_steps", 0), ("outer_optimizer", "adam"), ("outer_momentum", 1.5)):
        with pytest.raises(SpecInvalid) as err:
            job_spec_validate(owner=user, data={"model_type": "mlp", "dataset": "iris", field: value})
        assert field in err.value.errors


def test_an_epoch_whose_metrics_failed_after_its_last_round_resumes_at_that_round(
    user, eager_celery, local_storage, monkeypatch, django_capture_on_commit_callbacks
):
    """The last round of an epoch is recorded (its state moved on, the next epoch may have
    started) before the epoch's metrics row: a failure in between leaves the epoch to do
    again from its last round, whose rows kept the state they start from."""
    from jobs.services import epochs

    spec = {**SPEC, "epochs": 2, "num_workers": 2}
    reference = run(user, spec, django_capture_on_commit_callbacks)
    real_record = epochs.epoch_record

    def fail_epoch_1(**kwargs):
        if kwargs["epoch"] == 1:
            raise RuntimeError("the database went away")
        return real_record(**kwargs)

    monkeypatch.setattr(epochs, "epoch_record", fail_epoch_1)
    real_launch = launch.epoch_launch  # epoch 2's message is lost too
    monkeypatch.setattr(launch, "epoch_launch", lambda job_id, epoch: epoch == 1 and real_launch(job_id, epoch))
    job = run(user, spec, django_capture_on_commit_callbacks)
    lifecycle.job_fail(job_id=job.id, reason="aggregating epoch 1, round 6 failed")  # as its failure for good does
    job.refresh_from_db()
    assert (
        job.status == Status.FAILED and job.completed_epochs == 0 and job.completed_rounds == job.rounds_per_epoch == 6
    )
    monkeypatch.undo()
    with django_capture_on_commit_callbacks(execute=True):
        assert lifecycle.job_resume(job=job) == 1
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED, job.error
    assert final_sha(job) == final_sha(reference)
