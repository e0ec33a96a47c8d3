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
from workers import log_capture, rounds
from workers.averaging import weighted_average
from workers.devices import configure_determinism, default_threads, select_device, set_threads
from workers.errors import Diverged, ShardsPending
from workers.evaluation import Evaluation, evaluate_model
from workers.init_weights import init_weights_apply
from workers.outer import outer_step
from workers.splits import job_split, shard_of
from workers.training import (
    LossNotFinite,
    Recipe,
    TrainingStopped,
    autocast_dtype,
    finite_name,
    first_non_finite,
    grad_scaler,
    make_optimizer,
    make_scheduler,
    train_epoch,
)
from workers.weights import (
    bytes_to_state,
    checkpoint_bytes,
    optimizer_from_bytes,
    optimizer_to_bytes,
    sha256_hex,
    state_to_bytes,
)
from workers.zoo import build_model, initial_model

logger = logging.getLogger(__name__)


def _round_start(job: Job, epoch: int, round: int, start_key: str) -> tuple[dict, dict]:
    """The global weights and outer state a round starts from: epoch 1's seeded initial
    weights (or its init_from weights), the state the round before left (``start_key``,
    content-addressed, recorded on the round's rows when they were made), or epoch e-1's
    checkpoint; from this worker's memory when it last read or wrote them
    (workers/state_cache.py)."""
    if epoch == 1 and round == 1:
        return _initial_model(job).state_dict(), {}
    if start_key:
        return rounds.global_state_read(start_key)
    checkpoint = Checkpoint.objects.get(job=job, epoch=epoch - 1, kind=Checkpoint.Kind.EPOCH)
    return rounds.checkpoint_state(checkpoint.file.name, checkpoint.sha256), {}


def _initial_model(job: Job) -> torch.nn.Module:
    """From the job's init_from weights, when it has some (the head seeded on a new class count)."""
    return init_weights_apply(
        job,
        initial_model(job.model_type, job.input_shape, job.num_classes, seed=job.seed, model_args=job.model_args),
    )


def _starting_model(job: Job, epoch: int, round: int = 1, start_key: str = "") -> torch.nn.Module:
    if epoch == 1 and round == 1:
        return _initial_model(job)
    model = build_model(job.model_type, job.input_shape, job.num_classes, job.model_args)
    model.load_state_dict(_round_start(job, epoch, round, start_key)[0])
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
def shard_step(*, job_id, epoch: int, shard: int, worker: str, in_chord: bool = True, round: int = 1) -> dict:
    """Train shard ``shard`` of round ``round`` of ``epoch`` and store its weights and
    optimiser state.

    A shard sent outside its round's chord (the reconciler sent it again) runs the
    round's aggregate step itself once every shard of the round has succeeded.

    (Measured: sending a one-shard epoch without a chord, its shard aggregating inline,
    was slower on 2 cores and SQLite — 6.5-6.8 s against 4.3-4.8 s for digits-cnn — as
    the next shard's claim waited on the inline aggregate's writes. Chords stay.)
    """
    claim = claims.task_claim(job_id=job_id, epoch=epoch, shard=shard, worker=worker, round=round)
    if claim is None:
        return {"skipped": True}
    job = claim.task.job
    if claim.already_done:
        local, key = None, claim.task.output_key
    else:
        trained = _train_shard(job, epoch, round, shard, claim)
        if trained is None:
            return {"stopped": True}
        local, key = (shard, trained), claim.task.output_key or shard_weights_key(job.id, epoch, shard, round)
    if not in_chord and selectors.epoch_all_succeeded(job_id=job.id, epoch=epoch, round=round):
        aggregate_step(job_id=job.id, epoch=epoch, round=round, local=local)
    return {"key": key}


def _train_shard(job: Job, epoch: int, round: int, shard: int, claim) -> dict[str, torch.Tensor] | None:
    """The training itself; returns the new weights, or None when the job stopped it."""
    started = time.monotonic()
    device = _prepare(job)
    autocast = autocast_dtype(job.precision, device)  # fp16 on a CPU-only worker: a user error, before any work
    split = job_split(job)
    rounds.rounds_fix(job, len(split.x_train))
    x, y = shard_of(split.x_train, split.y_train, shard, job.num_workers)
    optimizer_samples = len(x)  # the LR schedule counts the steps of whole epochs
    x, y, generator, shuffle = rounds.shard_data(job, epoch, round, shard, x, y)
    x, y = x.to(device), y.to(device)
    model = _starting_model(job, epoch, round, claim.task.start_key).to(device)
    optimizer, recipe = _shard_recipe(job, model, device, autocast=autocast, samples=optimizer_samples)
    previous = rounds.previous_optimizer_key(job, epoch, round, shard)
    if previous:  # the optimiser, its LR schedule and loss scaler continue where the shard's last round left them
        optimizer_from_bytes(optimizer, rounds.work_read(previous), scheduler=recipe.scheduler, scaler=recipe.scaler)

    def should_stop() -> bool:  # doubles as the heartbeat the reconciler watches
        log_capture.progress()
        return not claims.task_heartbeat(claim=claim)

    where = f"epoch {epoch}" + (f", round {round}" if job.sync_every_steps else "") + f", shard {shard}"
    try:
        result = train_epoch(
            model,
            optimizer,
            x,
            y,
            batch_size=job.batch_size,
            generator=generator,
            recipe=recipe,
            should_stop=should_stop,
            check_every_s=settings.TENSORFLEET_CANCEL_CHECK_SECONDS,
            shuffle=shuffle,
        )
    except TrainingStopped:
        claims.task_stop(claim=claim, status=Status.CANCELLED, error="job cancelled")
        return None
    except LossNotFinite as exc:
        raise Diverged(f"{exc} at {where}") from None
    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    bad = first_non_finite(state)
    if bad is not None:  # a last step can blow the weights up with the loss still finite
        raise Diverged(f"weights became non-finite ({bad}) at {where}")
    key = blob_write(shard_weights_key(job.id, epoch, shard, round), state_to_bytes(state))
    optimizer_state = optimizer_to_bytes(optimizer, scheduler=recipe.scheduler, scaler=recipe.scaler)
    rounds.work_write(shard_optimizer_key(job.id, epoch, shard, round), optimizer_state)
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
def aggregate_step(*, job_id, epoch: int, round: int = 1, local: tuple[int, dict] | None = None) -> dict:
    """Average a round's shard weights, apply the job's outer optimizer to them
    (workers/outer.py; ``average`` takes the average as it is), and hand the result to
    ``jobs.services.epochs.round_finished``, which stores it and decides what follows.
    A round inside its epoch leaves the global state (weights and outer state, content-
    addressed); the round that ends its epoch evaluates (on the epochs the job evaluates)
    and leaves the epoch's checkpoint. Then the files it folded in are deleted.

    A duplicate of this step (a redelivery) is harmless: the round is recorded once.
    """
    shards = selectors.epoch_shards(job_id=job_id, epoch=epoch, round=round)
    job, tasks = shards.job, shards.tasks
    if job is None or shards.recorded:
        return {"skipped": True}
    done = sum(t.status == Status.SUCCEEDED for t in tasks)
    if job.status != Status.RUNNING and done < len(tasks):
        return {"stopped": job.status}
    if len(tasks) != job.num_workers or done < len(tasks):
        raise ShardsPending(f"epoch {epoch} round {round}: {done} of {job.num_workers} shards done")

    device = _prepare(job)
    weights, outer = _round_weights(job, epoch, round, tasks, local)
    start_key = tasks[0].start_key  # superseded once this round is recorded
    if round < job.rounds_per_epoch:
        key = rounds.global_state_write(job.id, weights, outer)
        recorded = _finish(
            job, lambda: epochs.round_finished(job=job, epoch=epoch, round=round, state_key=key, result=None)
        )
        if recorded is None:
            return {"skipped": True}
        _work_delete(job, epoch, round, tasks, start_key if recorded and start_key != key else "")
        return {"epoch": epoch, "round": round}
    result = _epoch_result(job, epoch, tasks, weights, outer, device)
    if (
        _finish(job, lambda: epochs.round_finished(job=job, epoch=epoch, round=round, state_key="", result=result))
        is None
    ):
        return {"skipped": True}
    rounds.checkpoint_remember(sha256_hex(result.checkpoint), weights)  # the next epoch's shards on this worker
    _work_delete(job, epoch, round, tasks, start_key if start_key != result.state_key else "")
    return {"epoch": epoch, "val_accuracy": result.val_accuracy}


def _round_weights(job: Job, epoch: int, round: int, tasks, local) -> tuple[dict, dict]:
    """The new global weights and outer state: the shards' sample-weighted average, moved by the outer optimizer."""
    samples = [int(t.samples or 0) for t in tasks]  # set on every succeeded row
    states = [local[1] if local and local[0] == t.shard else bytes_to_state(blob_read(t.output_key)) for t in tasks]
    averaged = weighted_average(states, samples)
    at = f"epoch {epoch}" + (f", round {round}" if job.sync_every_steps else "")
    bad = first_non_finite(averaged)  # the shards' weights are finite; their float32 mean may not be
    if bad is not None:
        raise Diverged(f"the averaged weights became non-finite ({bad}) at {at}")
    if job.outer_optimizer == "average":
        return averaged, {}
    start, outer = _round_start(job, epoch, round, tasks[0].start_key)
    weights, outer = outer_step(
        start, averaged, outer, kind=job.outer_optimizer, lr=job.outer_learning_rate, momentum=job.outer_momentum
    )
    bad = first_non_finite(weights)
    if bad is not None:
        raise Diverged(f"the outer {job.outer_optimizer} step made the weights non-finite ({bad}) at {at}")
    return weights, outer


def _epoch_result(job: Job, epoch: int, tasks, weights: dict, outer: dict, device) -> epochs.EpochResult:
    """The epoch's checkpoint, its numbers over every round's shards, and its evaluation
    (on the epochs it evaluates). An outer optimizer's state is stored beside it."""
    model = build_model(job.model_type, job.input_shape, job.num_classes, job.model_args)
    model.load_state_dict(weights)
    evaluation = _evaluation(job, model, device, epoch)
    rows = tasks if job.rounds_per_epoch <= 1 else selectors.epoch_tasks(job_id=job.id, epoch=epoch)
    samples = [int(t.samples or 0) for t in rows]
    total = sum(samples)
    return epochs.EpochResult(
        epoch=epoch,
        checkpoint=checkpoint_bytes(weights, job.model_config, class_names=job.class_names),
        train_loss=sum(float(t.train_loss or 0.0) * n for t, n in zip(rows, samples, strict=True)) / max(total, 1),
        samples=total,
        duration_s=(timezone.now() - min(t.started_at or timezone.now() for t in rows)).total_seconds(),
        state_key=rounds.global_state_write(job.id, weights, outer) if job.outer_optimizer != "average" else "",
        **_evaluation_fields(evaluation),
    )


def _finish(job: Job, record) -> bool | None:
    """Run the lifecycle's ``record``; None when the job was deleted meanwhile (its objects swept again)."""
    try:
        return record()
    except Exception:
        if lifecycle.job_leftovers_delete(job_id=job.id):
            return None  # deleted while this aggregated (its checkpoint row had no job)
        raise


def _work_delete(job: Job, epoch: int, round: int, tasks, superseded_state: str) -> None:
    """Shard weights are folded into the round's result; the previous round's optimiser
    states have been read by every shard of this one; the state it superseded is not
    read again."""
    for t in tasks:
        blob_delete(t.output_key)
        previous = rounds.previous_optimizer_key(job, epoch, round, t.shard)
        if previous:
            blob_delete(previous)
    if superseded_state:
        blob_delete(superseded_state)
