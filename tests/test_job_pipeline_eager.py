"""A whole job through the orchestration with Celery run in-process and local storage."""

from __future__ import annotations

import pytest

from jobs.models import Job, Status
from jobs.services import lifecycle
from storage_app.blobs import blob_read
from workers.weights import load_checkpoint

SPEC = dict(
    name="iris",
    model_type="mlp",
    dataset="iris",
    num_workers=2,
    epochs=4,
    batch_size=16,
    learning_rate=0.01,
    optimizer="adam",
    momentum=0.0,
    seed=3,
    queue="cpu",
    threads=1,
)


def run_job(user, spec, capture):
    with capture(execute=True):
        job = lifecycle.job_create(owner=user, spec=spec)
    job.refresh_from_db()
    return job


@pytest.mark.django_db(transaction=True)
def test_job_trains_every_epoch_and_checkpoints_the_result(
    user, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    job = run_job(user, SPEC, django_capture_on_commit_callbacks)

    assert job.status == Status.SUCCEEDED, job.error
    assert job.completed_tasks == job.total_tasks == 8
    assert job.progress == 1.0
    assert list(job.epoch_metrics.values_list("epoch", flat=True)) == [1, 2, 3, 4]
    assert job.val_accuracy >= 0.85
    assert job.tasks.filter(status=Status.SUCCEEDED).count() == 8
    final = job.checkpoints.get(kind="final")
    model = load_checkpoint(blob_read(final.file.name))
    import torch

    from workers.splits import build_split

    split = build_split("iris", seed=SPEC["seed"])
    with torch.no_grad():
        acc = (model(split.x_val).argmax(1) == split.y_val).float().mean().item()
    assert acc == pytest.approx(job.val_accuracy)


@pytest.mark.django_db(transaction=True)
def test_same_job_twice_gives_the_same_final_checkpoint(
    user, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    first = run_job(user, SPEC, django_capture_on_commit_callbacks)
    second = run_job(user, SPEC, django_capture_on_commit_callbacks)
    other_seed = run_job(user, {**SPEC, "seed": 4}, django_capture_on_commit_callbacks)

    sha = lambda job: job.checkpoints.get(kind="final").sha256  # noqa: E731
    assert sha(first) == sha(second)
    assert sha(first) != sha(other_seed)


@pytest.mark.django_db(transaction=True)
def test_shard_work_files_are_removed_after_aggregation(
    user, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    job = run_job(user, SPEC, django_capture_on_commit_callbacks)
    work = local_storage / "jobs" / str(job.id) / "work"
    leftover = sorted(p.name for p in work.rglob("*") if p.is_file())
    # Only the last epoch's optimiser states stay, for a resume from the final checkpoint.
    assert leftover == ["shard-000.optimizer.safetensors", "shard-001.optimizer.safetensors"]

    # Retention: the last 3 epochs (the default), the best epoch, and the final checkpoint.
    metrics = {m.epoch: m.val_accuracy for m in job.epoch_metrics.all()}
    best = max(sorted(metrics), key=lambda e: metrics[e])
    kept = set(job.checkpoints.filter(kind="epoch").values_list("epoch", flat=True))
    assert kept == {2, 3, 4} | {best}
    assert job.checkpoints.filter(kind="final", epoch=4).exists()
    on_disk = sorted(p.name for p in (local_storage / "jobs" / str(job.id) / "checkpoints").iterdir())
    assert on_disk == sorted([f"epoch-{e:04d}.safetensors" for e in kept] + ["final.safetensors"])


@pytest.mark.django_db(transaction=True)
def test_keep_checkpoints_one_keeps_last_best_and_final(
    user, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    job = run_job(user, {**SPEC, "keep_checkpoints": 1, "epochs": 5}, django_capture_on_commit_callbacks)
    metrics = {m.epoch: m.val_accuracy for m in job.epoch_metrics.all()}
    best = max(sorted(metrics), key=lambda e: metrics[e])
    assert set(job.checkpoints.filter(kind="epoch").values_list("epoch", flat=True)) == {5, best}


@pytest.mark.django_db(transaction=True)
def test_deleting_a_job_deletes_its_objects(user, api, eager_celery, local_storage, django_capture_on_commit_callbacks):
    job = run_job(user, SPEC, django_capture_on_commit_callbacks)
    assert (local_storage / "jobs" / str(job.id)).exists()
    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/v1/jobs/{job.id}").status_code == 204
    assert not Job.objects.filter(id=job.id).exists()
    assert not any(p.is_file() for p in (local_storage / "jobs" / str(job.id)).rglob("*"))
