"""init_from: the spec's validation, the worker's fit of the source tensors, and whole jobs
fine-tuned (Celery eager, local storage) from a job's checkpoint and from uploaded weights."""

from __future__ import annotations

import io

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from jobs.models import Job, Status
from jobs.services import lifecycle
from jobs.services.sweeps import trial_spec
from jobs.specs import SpecInvalid, job_spec_validate
from storage_app.blobs import blob_read
from storage_app.datasets import dataset_create
from storage_app.models import Checkpoint
from storage_app.weights import weights_create
from tests.datagen import write_csv
from tests.factories import JobFactory
from workers.init_weights import FitPlan, fit_plan, infer_source_classes
from workers.steps import _starting_model
from workers.zoo import initial_model

HEAD = ("5.weight", "5.bias")  # the mlp's classifier (workers.zoo)


def finished_job(owner, **fields) -> Job:
    job = JobFactory(owner=owner, status=Status.SUCCEEDED, model_type="mlp", **fields)
    for epoch, acc in ((1, 0.5), (2, 0.9), (3, 0.9)):
        Checkpoint.objects.create(
            job=job, epoch=epoch, file=f"e{epoch}", sha256=f"{epoch:064d}", size=1, val_accuracy=acc
        )
    Checkpoint.objects.create(job=job, epoch=3, kind="final", file="final", sha256="f" * 64, size=1)
    return job


def spec(init_from, **fields) -> dict:
    return {"model_type": "mlp", "dataset": "iris", "init_from": init_from, **fields}


def refusal(owner, init_from, **fields) -> str:
    with pytest.raises(SpecInvalid) as caught:
        job_spec_validate(owner=owner, data=spec(init_from, **fields))
    return " ".join(caught.value.errors["init_from"])


# The spec ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_job_checkpoint_resolves_to_the_row_and_its_sha256(user):
    source = finished_job(user)
    best = job_spec_validate(owner=user, data=spec({"job": str(source.id), "checkpoint": "best"}))["init_from"]
    assert (best["epoch"], best["kind"], best["sha256"]) == (2, "epoch", f"{2:064d}")  # earliest of a tie
    final = job_spec_validate(owner=user, data=spec({"job": str(source.id)}))["init_from"]
    assert final == {
        "job": str(source.id),
        "checkpoint": "final",
        "checkpoint_id": source.checkpoints.get(kind="final").id,
        "epoch": 3,
        "kind": "final",
        "sha256": "f" * 64,
        "num_classes": 3,
    }
    third = job_spec_validate(owner=user, data=spec({"job": str(source.id), "checkpoint": 3}))["init_from"]
    assert (third["epoch"], third["kind"]) == (3, "epoch")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value, reason",
    [
        ("not json", "not valid JSON"),
        (["job"], "init_from is"),
        ({}, "init_from is"),
        ({"job": "x", "weights": "y"}, "init_from is"),
        ({"job": "x", "epoch": 3}, "unknown key 'epoch'"),
        ({"job": "x", "checkpoint": "latest"}, "not 'latest'"),
        ({"job": "x", "checkpoint": 0}, "epoch number >= 1"),
        ({"job": "x", "checkpoint": True}, "not True"),
        ({"weights": 7}, "id or name"),
        ({"weights": " "}, "id or name"),
    ],
)
def test_a_malformed_init_from_is_a_400_saying_what_it_takes(user, value, reason):
    assert reason in refusal(user, value)


@pytest.mark.django_db
def test_another_users_job_reads_as_an_unknown_one(user, other_user):
    theirs = finished_job(other_user)
    unknown = refusal(user, {"job": "1b4e28ba-2fa1-11d2-883f-0016d3cca427"})
    assert refusal(user, {"job": str(theirs.id)}) == unknown.replace(
        "1b4e28ba-2fa1-11d2-883f-0016d3cca427", str(theirs.id)
    )
    assert "not one of yours" in refusal(user, {"job": "not-an-id"})


@pytest.mark.django_db
def test_a_checkpoint_that_does_not_exist_says_which_do(user):
    source = finished_job(user)
    message = refusal(user, {"job": str(source.id), "checkpoint": 9})
    assert "no epoch 9 checkpoint" in message and "final; best (epoch 2); epochs 1, 2, 3" in message
    source.checkpoints.filter(kind="final").delete()
    assert "no final checkpoint" in refusal(user, {"job": str(source.id)})
    empty = JobFactory(owner=user, status=Status.FAILED)
    assert "it has no checkpoint" in refusal(user, {"job": str(empty.id), "checkpoint": "best"})


@pytest.mark.django_db
def test_a_running_job_cannot_be_started_from(user):
    running = finished_job(user)
    Job.objects.filter(id=running.id).update(status=Status.RUNNING)
    assert "still running" in refusal(user, {"job": str(running.id)})


@pytest.mark.django_db
def test_a_checkpoint_of_another_model_is_refused_naming_it(user):
    source = finished_job(user)
    message = refusal(user, {"job": str(source.id)}, model_type="logreg")
    assert "holds a mlp model" in message and "this job is a logreg" in message


@pytest.mark.django_db
def test_weights_without_a_floating_point_tensor_are_refused(user, local_storage, tmp_path):
    path = tmp_path / "ints.safetensors"
    path.write_bytes(st_save({"steps": torch.tensor([1, 2], dtype=torch.int64)}))
    weights_create(owner=user, name="ints", path=path)
    assert "no floating-point tensor" in refusal(user, {"weights": "ints"})


@pytest.mark.django_db
def test_weights_deleted_before_the_job_is_stored_are_a_400(user, local_storage, tmp_path, monkeypatch):
    monkeypatch.setattr("jobs.services.launch.job_launch", lambda job_id: None)
    path = tmp_path / "w.safetensors"
    path.write_bytes(st_save({"w": torch.ones(2)}))
    weights = weights_create(owner=user, name="w", path=path)
    validated = job_spec_validate(owner=user, data=spec({"weights": "w"}))
    weights.delete()
    with pytest.raises(SpecInvalid, match="deleted meanwhile"):
        lifecycle.job_create(owner=user, spec=validated)
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_a_trials_spec_names_the_source_as_the_spec_did(user, monkeypatch):
    monkeypatch.setattr("jobs.services.launch.job_launch", lambda job_id: None)
    source = finished_job(user)
    job = lifecycle.job_create(
        owner=user, spec=job_spec_validate(owner=user, data=spec({"job": str(source.id)}, threads=1))
    )
    again = trial_spec(job)
    assert again["init_from"] == {"job": str(source.id), "checkpoint": "final"}
    assert job_spec_validate(owner=user, data={**again, "dataset": "iris"})["init_from"] == job.init_from


# The worker's fit --------------------------------------------------------------------------


def test_the_head_keeps_its_seed_only_when_the_class_count_differs():
    source = initial_model("mlp", [64], 10, seed=1).state_dict()
    target = initial_model("mlp", [64], 5, seed=2).state_dict()
    plan = fit_plan(source, target, num_classes=5, source_classes=10)
    assert plan.fits and sorted(plan.head) == sorted(HEAD) and len(plan.loaded) == 4
    shapes = lambda s: {n: tuple(t.shape) for n, t in s.items()}  # noqa: E731
    assert infer_source_classes(shapes(source), shapes(target), 5) == 10
    assert fit_plan(source, target, num_classes=5, source_classes=None).head == plan.head  # inferred


def test_any_other_misfit_is_listed():
    source = initial_model("mlp", [4], 3, seed=1).state_dict()
    source["extra"] = torch.zeros(2)
    source["3.bias"] = source["3.bias"].to(torch.int64)
    del source["3.weight"]
    target = initial_model("mlp", [64], 5, seed=2).state_dict()
    plan = fit_plan(source, target, num_classes=5, source_classes=3)
    assert plan == FitPlan(
        loaded=["1.bias"],
        head=["5.weight", "5.bias"],
        missing=["3.weight"],
        unexpected=["extra"],
        wrong=[
            "1.weight is [512, 4] in the source, [512, 64] here",
            "3.bias is torch.int64 in the source, torch.float32 here",
        ],
    )


# Whole jobs --------------------------------------------------------------------------------

SOURCE = dict(
    name="digits-source",
    model_type="mlp",
    dataset="digits",
    num_workers=2,
    epochs=3,
    batch_size=32,
    learning_rate=0.002,
    seed=3,
    threads=1,
)


def run(user, data: dict, capture) -> Job:
    validated = job_spec_validate(owner=user, data=data)
    with capture(execute=True):
        job = lifecycle.job_create(owner=user, spec=validated)
    job.refresh_from_db()
    return job


@pytest.fixture
def five_digits(user, tmp_path, local_storage):
    """Digits 0-4 as a CSV of the same 64 features: another dataset, with 5 classes, not 10."""
    from sklearn.datasets import load_digits

    d = load_digits()
    keep = d.target < 5
    path = write_csv(tmp_path / "five.csv", d.data[keep] / 16.0, d.target[keep])
    return dataset_create(owner=user, name="five-digits", path=path, fmt="csv", label_column="label")


def final_state(job: Job) -> dict[str, torch.Tensor]:
    return st_load(blob_read(job.checkpoints.get(kind="final").file.name))


@pytest.mark.django_db(transaction=True)
def test_fine_tuning_a_jobs_final_checkpoint_on_fewer_classes(
    user, eager_celery, local_storage, five_digits, django_capture_on_commit_callbacks
):
    source = run(user, SOURCE, django_capture_on_commit_callbacks)
    assert source.status == Status.SUCCEEDED, source.error
    tune = {**SOURCE, "name": "tuned", "dataset": "five-digits", "epochs": 2, "seed": 5}
    tune["init_from"] = {"job": str(source.id), "checkpoint": "final"}
    tuned = run(user, tune, django_capture_on_commit_callbacks)
    assert tuned.status == Status.SUCCEEDED, tuned.error
    assert tuned.num_classes == 5 and tuned.init_from["sha256"] == source.checkpoints.get(kind="final").sha256
    assert tuned.val_accuracy >= 0.9

    start = _starting_model(tuned, 1).state_dict()
    seeded = initial_model("mlp", tuned.input_shape, 5, seed=5).state_dict()
    loaded = final_state(source)
    for name, tensor in start.items():
        if name in HEAD:  # the head: the job's own seed, not the source's
            assert torch.equal(tensor, seeded[name]) and tensor.shape != loaded[name].shape
        else:
            assert torch.equal(tensor, loaded[name]) and not torch.equal(tensor, seeded[name])

    twice = run(user, {**tune, "name": "tuned again"}, django_capture_on_commit_callbacks)
    from_scratch = run(user, {**tune, "name": "scratch", "init_from": None}, django_capture_on_commit_callbacks)
    sha = lambda job: job.checkpoints.get(kind="final").sha256  # noqa: E731
    assert sha(twice) == sha(tuned) and sha(from_scratch) != sha(tuned)


def upload_weights(api, state: dict[str, torch.Tensor], name: str) -> dict:
    f = io.BytesIO(st_save({k: v.contiguous() for k, v in state.items()}))
    f.name = f"{name}.safetensors"
    r = api.post("/api/v1/weights", {"file": f, "name": name}, format="multipart")
    assert r.status_code == 201, r.content
    return r.json()


@pytest.mark.django_db(transaction=True)
def test_a_job_starts_from_uploaded_weights_and_a_misfit_fails_it_listing_the_tensors(
    user, api, eager_celery, local_storage, five_digits, django_capture_on_commit_callbacks
):
    # Pretrained "elsewhere": an mlp of the same shape with 7 classes, kept in bf16.
    pretrained = initial_model("mlp", [64], 7, seed=42).state_dict()
    pretrained = {k: v.to(torch.bfloat16) for k, v in pretrained.items()}
    weights = upload_weights(api, pretrained, "pretrained")
    data = {**SOURCE, "dataset": "five-digits", "epochs": 2, "init_from": {"weights": "pretrained"}}
    job = run(user, data, django_capture_on_commit_callbacks)
    assert job.status == Status.SUCCEEDED, job.error
    assert job.init_from == {"weights": weights["id"], "name": "pretrained", "sha256": weights["sha256"]}
    start = _starting_model(job, 1).state_dict()
    for name, tensor in start.items():
        if name not in HEAD:
            assert torch.equal(tensor, pretrained[name].to(torch.float32))
    again = run(user, {**data, "name": "again"}, django_capture_on_commit_callbacks)
    assert again.checkpoints.get(kind="final").sha256 == job.checkpoints.get(kind="final").sha256

    # As on a worker: the failure goes to the task's on_failure instead of up the caller's stack.
    eager_celery.conf.task_eager_propagates = False  # the fixture puts it back
    iris_sized = upload_weights(api, initial_model("mlp", [4], 3, seed=1).state_dict(), "iris-mlp")
    failed = run(user, {**data, "init_from": {"weights": iris_sized["id"]}}, django_capture_on_commit_callbacks)
    assert failed.status == Status.FAILED and failed.error_class == "user_error"
    assert "weights 'iris-mlp' does not fit this job's mlp model" in failed.error
    assert "1.weight is [512, 4] in the source, [512, 64] here" in failed.error
    assert not failed.checkpoints.exists()


@pytest.mark.django_db(transaction=True)
def test_a_source_whose_bytes_changed_fails_the_job(
    user, eager_celery, local_storage, five_digits, django_capture_on_commit_callbacks
):
    source = run(user, {**SOURCE, "epochs": 1}, django_capture_on_commit_callbacks)
    validated = job_spec_validate(
        owner=user, data={**SOURCE, "dataset": "five-digits", "init_from": {"job": str(source.id)}}
    )
    final = source.checkpoints.get(kind="final")
    (local_storage / final.file.name).write_bytes(st_save({"x": torch.ones(1)}))  # under the recorded sha256
    eager_celery.conf.task_eager_propagates = False
    with django_capture_on_commit_callbacks(execute=True):
        job = lifecycle.job_create(owner=user, spec=validated)
    job.refresh_from_db()
    assert job.status == Status.FAILED and job.error_class == "user_error"
    assert f"the final checkpoint of job {source.id} changed since this job was created" in job.error
