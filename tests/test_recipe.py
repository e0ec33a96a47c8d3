"""The training recipe of a plain PyTorch script, in the spec: torch's optimisers and LR
schedulers (continued exactly across epochs and shards), gradient clipping, label
smoothing, seeded augmentation, mixed precision, and the spec's rules across fields."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from jobs.failure_classes import USER_ERROR
from jobs.models import Job, Status
from jobs.services import launch, lifecycle
from storage_app.blobs import blob_read, shard_optimizer_key
from workers.errors import classify
from workers.training import (
    PrecisionUnavailable,
    Recipe,
    augment_images,
    augment_padding,
    augment_seed,
    autocast_dtype,
    make_optimizer,
    make_scheduler,
    shard_generator,
    train_epoch,
)
from workers.weights import SCHEDULER_KEY, optimizer_from_bytes, optimizer_to_bytes, read_metadata

LR = 0.1


def lrs_over(schedule: str, *, epochs: int, steps: int, warmup: int = 0) -> list[float]:
    """The LR each optimiser step of a job takes."""
    opt = make_optimizer("sgd", [nn.Parameter(torch.zeros(1))], lr=LR)
    sched = make_scheduler(opt, schedule=schedule, lr=LR, epochs=epochs, warmup_epochs=warmup, steps_per_epoch=steps)
    out = []
    for _ in range(epochs * steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched is not None:
            sched.step()
    return out


# Optimisers and schedules ----------------------------------------------------------------------


def test_optimizers_are_torchs_own_with_the_specs_settings():
    params = [nn.Parameter(torch.zeros(2))]
    adamw = make_optimizer("adamw", params, lr=0.01, weight_decay=0.05)
    assert type(adamw) is torch.optim.AdamW and adamw.param_groups[0]["weight_decay"] == 0.05
    sgd = make_optimizer("sgd", params, lr=0.1, momentum=0.9, weight_decay=1e-4, nesterov=True)
    group = sgd.param_groups[0]
    assert type(sgd) is torch.optim.SGD and group["nesterov"] and group["momentum"] == 0.9
    assert group["weight_decay"] == 1e-4
    assert type(make_optimizer("adam", params, lr=0.01)) is torch.optim.Adam


def test_constant_without_warmup_has_no_scheduler():
    opt = make_optimizer("adam", [nn.Parameter(torch.zeros(1))], lr=LR)
    assert make_scheduler(opt, schedule="constant", lr=LR, epochs=5, steps_per_epoch=3) is None
    assert lrs_over("constant", epochs=2, steps=3) == [LR] * 6


def test_warmup_rises_linearly_to_the_learning_rate_then_the_schedule_runs():
    lrs = lrs_over("constant", epochs=4, steps=3, warmup=1)  # 3 warmup steps
    assert lrs[:4] == pytest.approx([LR / 4, LR / 2, 3 * LR / 4, LR])
    assert lrs[4:] == pytest.approx([LR] * 8)
    cosine = lrs_over("cosine", epochs=4, steps=3, warmup=1)
    assert cosine[:4] == pytest.approx([LR / 4, LR / 2, 3 * LR / 4, LR])
    assert all(a > b for a, b in zip(cosine[3:], cosine[4:], strict=False))  # then it only falls
    assert cosine[-1] < 0.05 * LR


def test_cosine_falls_to_zero_over_the_whole_job():
    lrs = lrs_over("cosine", epochs=3, steps=4)
    assert lrs[0] == LR and all(a > b for a, b in zip(lrs, lrs[1:], strict=False))
    assert lrs[-1] == pytest.approx(LR * (1 + torch.cos(torch.tensor(11 / 12 * torch.pi)).item()) / 2)


def test_step_decays_tenfold_every_third_of_the_epochs():
    lrs = lrs_over("step", epochs=6, steps=2)  # every 2 epochs = 4 steps
    assert lrs == pytest.approx([LR] * 4 + [LR / 10] * 4 + [LR / 100] * 4)


def test_one_cycle_peaks_where_warmup_ends_and_never_fails_on_tiny_jobs():
    lrs = lrs_over("one_cycle", epochs=5, steps=4, warmup=1)
    assert max(lrs) == pytest.approx(LR) and lrs.index(max(lrs)) == 4
    assert lrs[0] < LR / 10 and lrs[-1] < LR / 100
    for epochs in range(1, 5):  # OneCycleLR divides by zero on some phase lengths; none reaches it
        for steps in range(1, 4):
            for warmup in range(epochs):
                assert len(lrs_over("one_cycle", epochs=epochs, steps=steps, warmup=warmup)) == epochs * steps


def fit(schedule: str, state: dict | None, epoch: int, *, precision_dtype=None) -> dict:
    """One epoch on a fixed problem, from the saved optimiser state of the epoch before."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    if state is not None:
        model.load_state_dict(state["model"])
    opt = make_optimizer("adamw", model.parameters(), lr=0.05, weight_decay=0.01)
    sched = make_scheduler(opt, schedule=schedule, lr=0.05, epochs=3, warmup_epochs=1, steps_per_epoch=4)
    if state is not None:
        optimizer_from_bytes(opt, state["optimizer"], scheduler=sched)
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(50, 6, generator=g), torch.randint(0, 3, (50,), generator=g)
    recipe = Recipe(label_smoothing=0.1, grad_clip_norm=0.5, scheduler=sched, autocast=precision_dtype)
    train_epoch(model, opt, x, y, batch_size=13, generator=shard_generator(1, epoch, 0), recipe=recipe)
    return {
        "model": {k: v.clone() for k, v in model.state_dict().items()},
        "optimizer": optimizer_to_bytes(opt, scheduler=sched),
    }


@pytest.mark.parametrize("schedule", ["constant", "step", "cosine", "one_cycle"])
def test_the_schedule_continues_exactly_from_the_saved_state(schedule):
    """Each epoch of a shard is a fresh call: the scheduler is rebuilt and loaded from
    the JSON saved with the optimiser, and goes on as if it had never stopped."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = make_optimizer("adamw", model.parameters(), lr=0.05, weight_decay=0.01)
    sched = make_scheduler(opt, schedule=schedule, lr=0.05, epochs=3, warmup_epochs=1, steps_per_epoch=4)
    g = torch.Generator().manual_seed(7)
    x, y = torch.randn(50, 6, generator=g), torch.randint(0, 3, (50,), generator=g)
    recipe = Recipe(label_smoothing=0.1, grad_clip_norm=0.5, scheduler=sched)
    for epoch in (1, 2, 3):
        train_epoch(model, opt, x, y, batch_size=13, generator=shard_generator(1, epoch, 0), recipe=recipe)

    state = None
    for epoch in (1, 2, 3):
        state = fit(schedule, state, epoch)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, state["model"][name]), name
    saved = json.loads(read_metadata(state["optimizer"])[SCHEDULER_KEY])  # JSON, not a pickle
    assert saved["last_epoch"] == 12  # every optimiser step of the job: 3 epochs x 4 batches


def test_a_saved_schedule_is_required_to_continue():
    opt = make_optimizer("sgd", [nn.Parameter(torch.zeros(1))], lr=LR)
    without = optimizer_to_bytes(opt)
    sched = make_scheduler(opt, schedule="cosine", lr=LR, epochs=2, steps_per_epoch=2)
    with pytest.raises(ValueError, match="LR schedule"):
        optimizer_from_bytes(opt, without, scheduler=sched)


# Steps: clipping, smoothing, precision -------------------------------------------------------


def one_step(recipe: Recipe) -> tuple[torch.Tensor, float]:
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    x, y = torch.randn(8, 4) * 100, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    result = train_epoch(model, opt, x, y, batch_size=8, generator=torch.Generator().manual_seed(0), recipe=recipe)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    return after - before, result.train_loss


def test_gradient_clipping_bounds_the_step():
    free, _ = one_step(Recipe())
    clipped, _ = one_step(Recipe(grad_clip_norm=0.25))
    assert free.norm() > 1.0 and clipped.norm() == pytest.approx(0.25, rel=1e-4)


def test_label_smoothing_is_cross_entropys_own():
    _, plain = one_step(Recipe())
    _, smoothed = one_step(Recipe(label_smoothing=0.2))
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, y = torch.randn(8, 4) * 100, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    expected = nn.CrossEntropyLoss(label_smoothing=0.2)(model(x), y).item()
    assert smoothed == pytest.approx(expected) and smoothed != plain


def test_fp16_needs_cuda_and_is_a_user_error_without():
    with pytest.raises(PrecisionUnavailable, match="fp16 needs a CUDA GPU") as caught:
        autocast_dtype("fp16", torch.device("cpu"))
    assert classify(caught.value) == USER_ERROR
    assert autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    assert autocast_dtype("fp32", torch.device("cpu")) is None


def test_bf16_trains_on_the_cpu_and_is_reproducible():
    first = fit("cosine", None, 1, precision_dtype=torch.bfloat16)
    again = fit("cosine", None, 1, precision_dtype=torch.bfloat16)
    fp32 = fit("cosine", None, 1)
    assert all(torch.equal(first["model"][k], again["model"][k]) for k in first["model"])
    assert any(not torch.equal(first["model"][k], fp32["model"][k]) for k in first["model"])


# Augmentation -----------------------------------------------------------------------------------


def test_augment_crops_and_flips_each_image_from_its_seed_alone():
    assert augment_padding(32, 32) == (4, 4) and augment_padding(8, 16) == (2, 1)
    x = torch.rand(40, 3, 32, 32)
    rng_before = torch.get_rng_state()
    out = augment_images(x, seed=augment_seed(3, 2, 1))
    assert torch.equal(torch.get_rng_state(), rng_before)  # the worker's RNG is untouched
    assert out.shape == x.shape
    assert torch.equal(out, augment_images(x, seed=augment_seed(3, 2, 1)))
    assert not torch.equal(out, augment_images(x, seed=augment_seed(3, 2, 0)))
    assert augment_seed(3, 2, 1) not in {augment_seed(3, 1, 1), augment_seed(4, 2, 1)}
    padded = nn.functional.pad(x, (4, 4, 4, 4))
    for image, source in zip(out, padded, strict=True):  # each is a 32x32 window of its padded self, maybe mirrored
        windows = [source[:, t : t + 32, s : s + 32] for t in range(9) for s in range(9)]
        assert any(torch.equal(image, w) or torch.equal(image, w.flip(-1)) for w in windows)
    moved = sum(not torch.equal(a, b) for a, b in zip(out, x, strict=True))
    assert moved > 30


# Jobs on the eager pipeline ---------------------------------------------------------------------

SPEC = dict(
    name="recipe",
    model_type="cnn",
    dataset="digits",
    num_workers=2,
    epochs=4,
    batch_size=64,
    learning_rate=0.01,
    optimizer="adamw",
    momentum=0.0,
    seed=11,
    queue="cpu",
    threads=1,
    keep_checkpoints=2,
    weight_decay=0.02,
    lr_schedule="cosine",
    warmup_epochs=1,
    label_smoothing=0.1,
    grad_clip_norm=1.0,
    augment=True,
    eval_every=2,
    early_stopping={"metric": "val_accuracy", "patience": 2, "min_delta": 0.0},
)


def run_job(user, spec, capture) -> Job:
    with capture(execute=True):
        job = lifecycle.job_create(owner=user, spec=spec)
    job.refresh_from_db()
    return job


def final_sha(job: Job) -> str:
    return job.checkpoints.get(kind="final").sha256


@pytest.mark.django_db(transaction=True)
def test_the_whole_recipe_trains_and_is_bit_identical_when_run_twice(
    user, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    first = run_job(user, SPEC, django_capture_on_commit_callbacks)
    assert first.status == Status.SUCCEEDED, first.error
    assert first.val_accuracy > 0.7 and first.stop_reason == ""
    assert [m.val_accuracy is not None for m in first.epoch_metrics.all()] == [False, True, False, True]
    second = run_job(user, SPEC, django_capture_on_commit_callbacks)
    assert final_sha(first) == final_sha(second)
    plain = run_job(user, {**SPEC, "augment": False}, django_capture_on_commit_callbacks)
    assert final_sha(plain) != final_sha(first)
    # The schedule ran over every optimiser step of the job, across epochs and shards.
    for shard in range(2):
        saved = blob_read(shard_optimizer_key(first.id, 4, shard))
        schedule = json.loads(read_metadata(saved)[SCHEDULER_KEY])
        steps = -(-len(range(shard, 1437, 2)) // 64)  # shard's samples / batch, rounded up
        assert schedule["last_epoch"] == 4 * steps


@pytest.mark.django_db(transaction=True)
def test_the_whole_recipe_resumes_to_the_same_weights(
    user, eager_celery, local_storage, monkeypatch, django_capture_on_commit_callbacks
):
    reference = run_job(user, SPEC, django_capture_on_commit_callbacks)
    real_launch = launch.epoch_launch

    def cancel_before_epoch_3(job_id, epoch):
        if epoch == 3:
            lifecycle.job_cancel(job=Job.objects.get(id=job_id))
        return real_launch(job_id, epoch)

    monkeypatch.setattr(launch, "epoch_launch", cancel_before_epoch_3)
    job = run_job(user, SPEC, django_capture_on_commit_callbacks)
    assert job.status == Status.CANCELLED and job.completed_epochs == 2
    monkeypatch.setattr(launch, "epoch_launch", real_launch)
    with django_capture_on_commit_callbacks(execute=True):
        assert lifecycle.job_resume(job=job) == 3
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED
    assert final_sha(job) == final_sha(reference)


@pytest.mark.django_db(transaction=True)
def test_fp16_on_a_cpu_worker_fails_the_job_as_a_user_error(
    user, eager_celery, local_storage, django_capture_on_commit_callbacks
):
    eager_celery.conf.task_eager_propagates = False  # as on a worker: the failure goes to on_failure
    spec = {**SPEC, "precision": "fp16", "queue": "gpu", "augment": False, "early_stopping": None, "epochs": 1}
    job = run_job(user, spec, django_capture_on_commit_callbacks)
    assert job.status == Status.FAILED and job.error_class == USER_ERROR
    assert "fp16 needs a CUDA GPU" in job.error


# The spec's rules -------------------------------------------------------------------------------

API_SPEC = {"model_type": "cnn", "dataset": "digits", "num_workers": 1, "epochs": 5}


@pytest.fixture
def no_enqueue(monkeypatch):
    monkeypatch.setattr("jobs.services.launch.job_launch", lambda job_id: None)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("extra", "field", "words"),
    [
        ({"nesterov": True, "optimizer": "adam"}, "nesterov", "needs optimizer 'sgd'"),
        ({"nesterov": True, "optimizer": "sgd", "momentum": 0.0}, "nesterov", "momentum above 0"),
        ({"warmup_epochs": 5}, "warmup_epochs", "fewer than epochs (5)"),
        ({"precision": "fp16", "queue": "cpu"}, "precision", "queue 'cpu' is not a GPU queue"),
        ({"augment": True, "dataset": "iris", "model_type": "mlp"}, "augment", "needs an image dataset"),
        ({"lr_schedule": "linear"}, "lr_schedule", "not a valid choice"),
        ({"early_stopping": {"metric": "train_loss"}}, "early_stopping", "not a valid choice"),
    ],
)
def test_recipe_rules_are_400s_naming_the_field(api, no_enqueue, extra, field, words):
    r = api.post("/api/v1/jobs", {**API_SPEC, **extra}, format="json")
    assert r.status_code == 400, r.content
    assert words in json.dumps(r.json()[field])
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_full_recipe_is_accepted_and_stored(api, no_enqueue, settings):
    settings.TENSORFLEET_GPU_QUEUES = ["gpu"]
    spec = {
        **API_SPEC,
        "optimizer": "sgd",
        "momentum": 0.9,
        "nesterov": True,
        "weight_decay": 5e-4,
        "lr_schedule": "one_cycle",
        "warmup_epochs": 1,
        "grad_clip_norm": 2.0,
        "label_smoothing": 0.1,
        "augment": True,
        "precision": "fp16",
        "queue": "gpu",
        "eval_every": 2,
        "early_stopping": {"metric": "val_loss", "patience": 2},
    }
    r = api.post("/api/v1/jobs", spec, format="json")
    assert r.status_code == 201, r.content
    job = Job.objects.get()
    assert (job.nesterov, job.lr_schedule, job.precision, job.eval_every) == (True, "one_cycle", "fp16", 2)
    assert job.early_stopping == {"metric": "val_loss", "patience": 2, "min_delta": 0.0}
    bf16 = api.post("/api/v1/jobs", {**API_SPEC, "precision": "bf16", "queue": "cpu"}, format="json")
    assert bf16.status_code == 201, bf16.content
