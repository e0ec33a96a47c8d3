"""The work behind the Celery tasks, as plain functions: train one shard, aggregate one epoch."""

from __future__ import annotations

import logging
import math
import time

import torch
from django.conf import settings
from django.utils import timezone

from jobs import selectors
from jobs.models import Job, Status
from jobs.services import claims, epochs, lifecycle
from storage_app.blobs import blob_delete, blob_read, blob_write, shard_optimizer_key, shard_weights_key
from storage_app.models import Checkpoint
from workers import log_capture
from workers.averaging import weighted_average
from workers.devices import configure_determinism, default_threads, select_device, set_threads
from workers.errors import Diverged, ShardsPending
from workers.init_weights import init_weights_apply
from workers.evaluation import Evaluation, evaluate_model
from workers.splits import job_split, shard_of
from workers.training import (
    LossNotFinite,
    Recipe,
    TrainingStopped,
    augment_images,
    augment_seed,
    autocast_dtype,
    finite_name,
    first_non_finite,
    grad_scaler,
    make_optimizer,
    make_scheduler,
    shard_generator,
    train_epoch,
)
from workers.weights import (
    bytes_to_state,
    checkpoint_bytes,
    optimizer_from_bytes,
    optimizer_to_bytes,
    state_to_bytes,
)
from workers.zoo import build_model, initial_model

logger = logging.getLogger(__name__)


def _starting_model(job: Job, epoch: int) -> torch.nn.Module:
    """Epoch 1 starts from the seeded initial weights, epoch e from epoch e-1's checkpoint."""
    if epoch == 1:  # from the job's init_from weights, when it has some (the head seeded on a new class count)
        return init_weights_apply(
            job,
            initial_model(job.model_type, job.input_shape, job.num_classes, seed=job.seed, model_args=job.model_args),
        )
    checkpoint = Checkpoint.objects.get(job=job, epoch=epoch - 1, kind=Checkpoint.Kind.EPOCH)
    model = build_model(job.model_type, job.input_shape, job.num_classes, job.model_args)
    model.load_state_dict(bytes_to_state(blob_read(checkpoint.file.name)))
    return model


def _prepare(job: Job) -> torch.device:
    """The device, and torch's thread count: the job's, fixed by the first worker that
    trains it when the spec left it out (the count is part of the arithmetic)."""
    device = select_device()
    configure_determinism(device)
    if not job.threads:
        chosen = settings.TENSORFLEET_THREADS_PER_SHARD or default_threads(job.num_workers)
        job.threads = lifecycle.job_threads_fix(job_id=job.id, threads=chosen)
    set_threads(job.threads)
    return device


@log_capture.logged("shard")  # its log lines, kept for the API (workers/log_capture.py)
def shard_step(*, job_id, epoch: int, shard: int, worker: str, in_chord: bool = True) -> dict:
    """Train shard ``shard`` of ``epoch`` and store its weights and optimiser state.

    A shard sent outside its epoch's chord (the reconciler sent it again) runs the
    epoch's aggregate step itself once every shard of the epoch has succeeded.

    (Measured: sending a one-shard epoch without a chord, its shard aggregating inline,
    was slower on 2 cores and SQLite — 6.5-6.8 s against 4.3-4.8 s for digits-cnn — as
    the next shard's claim waited on the inline aggregate's writes. Chords stay.)
    """
    claim = claims.task_claim(job_id=job_id, epoch=epoch, shard=shard, worker=worker)
    if claim is None:
        return {"skipped": True}
    job = claim.task.job
    if claim.already_done:
        local, key = None, claim.task.output_key
    else:
        trained = _train_shard(job, epoch, shard, claim)
        if trained is None:
            return {"stopped": True}
        local, key = (shard, trained), claim.task.output_key or shard_weights_key(job.id, epoch, shard)
    if not in_chord and selectors.epoch_all_succeeded(job_id=job.id, epoch=epoch):
        aggregate_step(job_id=job.id, epoch=epoch, local=local)
    return {"key": key}


def _train_shard(job: Job, epoch: int, shard: int, claim) -> dict[str, torch.Tensor] | None:
    """The training itself; returns the new weights, or None when the job stopped it."""
    started = time.monotonic()
    device = _prepare(job)
    autocast = autocast_dtype(job.precision, device)  # fp16 on a CPU-only worker: a user error, before any work
    split = job_split(job)
    x, y = shard_of(split.x_train, split.y_train, shard, job.num_workers)
    if job.augment:  # on the CPU copy, from (seed, epoch, shard) alone
        x = augment_images(x, seed=augment_seed(job.seed, epoch, shard))
    x, y = x.to(device), y.to(device)
    model = _starting_model(job, epoch).to(device)
    optimizer, recipe = _shard_recipe(job, model, device, autocast=autocast, samples=len(x))
    if epoch > 1:  # the optimiser, its LR schedule and loss scaler continue where the shard's last epoch left them
        saved = blob_read(shard_optimizer_key(job.id, epoch - 1, shard))
        optimizer_from_bytes(optimizer, saved, scheduler=recipe.scheduler, scaler=recipe.scaler)

    def should_stop() -> bool:  # doubles as the heartbeat the reconciler watches
        log_capture.progress()
        return not claims.task_heartbeat(claim=claim)

    try:
        result = train_epoch(
            model,
            optimizer,
            x,
            y,
            batch_size=job.batch_size,
            generator=shard_generator(job.seed, epoch, shard),
            recipe=recipe,
            should_stop=should_stop,
            check_every_s=settings.TENSORFLEET_CANCEL_CHECK_SECONDS,
        )
    except TrainingStopped:
        claims.task_stop(claim=claim, status=Status.CANCELLED, error="job cancelled")
        return None
    except LossNotFinite as exc:
        raise Diverged(f"{exc} at epoch {epoch}, shard {shard}") from None
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    bad = first_non_finite(state)
    if bad is not None:  # a last step can blow the weights up with the loss still finite
        raise Diverged(f"weights became non-finite ({bad}) at epoch {epoch}, shard {shard}")
    key = blob_write(shard_weights_key(job.id, epoch, shard), state_to_bytes(state))
    optimizer_state = optimizer_to_bytes(optimizer, scheduler=recipe.scheduler, scaler=recipe.scaler)
    blob_write(shard_optimizer_key(job.id, epoch, shard), optimizer_state)
    recorded = claims.task_complete(
        claim=claim,
        output_key=key,
        samples=result.samples,
        train_loss=result.train_loss,
        duration_s=time.monotonic() - started,
    )
    if not recorded:
        # Deleted while it trained, its objects already swept: sweep again what this wrote.
        lifecycle.job_leftovers_delete(job_id=job.id)
    return state


def _shard_recipe(job: Job, model, device, *, autocast, samples: int) -> tuple[torch.optim.Optimizer, Recipe]:
    """The job's optimiser and the rest of its recipe, for a shard of ``samples`` samples.
    The LR schedule spans every optimiser step of the job (each epoch takes the same
    number of steps on a shard); its state travels with the optimiser's."""
    optimizer = make_optimizer(
        job.optimizer,
        model.parameters(),
        lr=job.learning_rate,
        momentum=job.momentum,
        weight_decay=job.weight_decay,
        nesterov=job.nesterov,
    )
    scheduler = make_scheduler(
        optimizer,
        schedule=job.lr_schedule,
        lr=job.learning_rate,
        epochs=job.epochs,
        warmup_epochs=job.warmup_epochs,
        steps_per_epoch=math.ceil(samples / job.batch_size),
    )
    recipe = Recipe(
        label_smoothing=job.label_smoothing,
        grad_clip_norm=job.grad_clip_norm,
        scheduler=scheduler,
        autocast=autocast,
        scaler=grad_scaler(job.precision, device),
    )
    return optimizer, recipe


def _evaluation(job: Job, model: torch.nn.Module, device: torch.device, epoch: int) -> Evaluation | None:
    """The averaged weights' validation metrics, on the epochs the job evaluates (every
    ``eval_every``, the last, a sweep's rungs: ``epochs.epoch_evaluates`` says); None on the others."""
    if not epochs.epoch_evaluates(job=job, epoch=epoch):
        return None
    split = job_split(job)
    x_val, y_val = split.x_val.to(device), split.y_val.to(device)
    evaluation = evaluate_model(model.to(device), x_val, y_val, num_classes=job.num_classes)
    if not math.isfinite(evaluation.loss):
        raise Diverged(f"validation loss became {finite_name(evaluation.loss)} at epoch {epoch}")
    return evaluation


def _evaluation_fields(evaluation: Evaluation | None) -> dict:
    """An evaluation as ``epochs.EpochResult`` fields; none for an epoch not evaluated."""
    if evaluation is None:
        return {}
    return {
        "val_loss": evaluation.loss,
        "val_accuracy": evaluation.accuracy,
        "top5_accuracy": evaluation.top5_accuracy,
        "per_class_accuracy": evaluation.per_class_accuracy,
        "confusion_matrix": evaluation.confusion_matrix,
    }


@log_capture.logged("aggregate")
def aggregate_step(*, job_id, epoch: int, local: tuple[int, dict] | None = None) -> dict:
    """Average the epoch's shard weights and evaluate them (on the epochs the job
    evaluates), hand the result to ``jobs.services.epochs.epoch_finished`` (which
    stores it and decides what follows), then delete the shard files it folded in.

    A duplicate of this step (a redelivery) is harmless: the epoch is recorded once.
    """
    shards = selectors.epoch_shards(job_id=job_id, epoch=epoch)
    job, tasks = shards.job, shards.tasks
    if job is None or shards.recorded:
        return {"skipped": True}
    done = sum(t.status == Status.SUCCEEDED for t in tasks)
    if job.status != Status.RUNNING and done < len(tasks):
        return {"stopped": job.status}
    if len(tasks) != job.num_workers or done < len(tasks):
        raise ShardsPending(f"epoch {epoch}: {done} of {job.num_workers} shards done")

    device = _prepare(job)
    samples = [int(t.samples or 0) for t in tasks]  # set on every succeeded row
    states = [local[1] if local and local[0] == t.shard else bytes_to_state(blob_read(t.output_key)) for t in tasks]
    averaged = weighted_average(states, samples)
    bad = first_non_finite(averaged)  # the shards' weights are finite; their float32 mean may not be
    if bad is not None:
        raise Diverged(f"the averaged weights became non-finite ({bad}) at epoch {epoch}")
    model = build_model(job.model_type, job.input_shape, job.num_classes, job.model_args)
    model.load_state_dict(averaged)
    evaluation = _evaluation(job, model, device, epoch)
    total = sum(samples)
    result = epochs.EpochResult(
        epoch=epoch,
        checkpoint=checkpoint_bytes(averaged, job.model_config, class_names=job.class_names),
        train_loss=sum(float(t.train_loss or 0.0) * n for t, n in zip(tasks, samples, strict=True)) / total,
        samples=total,
        duration_s=(timezone.now() - min(t.started_at or timezone.now() for t in tasks)).total_seconds(),
        **_evaluation_fields(evaluation),
    )
    try:
        epochs.epoch_finished(job=job, result=result)
    except Exception:
        if lifecycle.job_leftovers_delete(job_id=job.id):
            return {"skipped": True}  # deleted while this aggregated (its checkpoint row had no job)
        raise
    # Shard weights are folded into the checkpoint; the previous epoch's optimiser
    # states have been read by every shard of this one.
    for t in tasks:
        blob_delete(t.output_key)
        if epoch > 1:
            blob_delete(shard_optimizer_key(job.id, epoch - 1, t.shard))
    return {"epoch": epoch, "val_accuracy": result.val_accuracy}
