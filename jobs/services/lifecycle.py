"""Writes to a job as a whole: create, cancel, fail, resume, delete.

A job that ends (cancelled or failed here, succeeded in ``jobs.services.epochs``) sends
``jobs.signals.job_ended``; the sweep scheduler listens, so this module needs no sweep.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from jobs import orchestration, pending_messages, selectors, signals
from jobs.catalog import RECIPE_FIELDS
from jobs.init_from import init_from_lock
from jobs.models import ACTIVE_STATUSES, Job, Status, Task
from jobs.services import launch, projects
from jobs.specs import DatasetImport, SpecInvalid, dataset_errors
from jobs.validation_sets import DEFAULT_FRACTION, validation_fields
from storage_app.builtin_datasets import BUILTIN_DATASETS
from storage_app.datasets import DatasetError, dataset_import
from storage_app.services import job_objects_delete
from storage_app.usage import stored_bytes
from tensorfleet_site.quotas import limits as quotas

logger = logging.getLogger(__name__)


class JobNotActive(Exception):
    """The job has already finished (succeeded, failed or been cancelled)."""


class JobNotFinished(Exception):
    """The job is still queued or running."""


class JobNotResumable(Exception):
    """Only cancelled or failed jobs with epochs left, whose failure a resume can fix, resume."""


class JobGone(Exception):
    """The job was deleted meanwhile, by a request that raced this one."""


def _dataset_fields(dataset) -> dict:
    if isinstance(dataset, str):  # a built-in
        builtin = BUILTIN_DATASETS[dataset]
        return {"dataset": dataset, "input_shape": list(builtin.input_shape), "num_classes": builtin.num_classes}
    return {  # an uploaded storage_app.Dataset
        "dataset": dataset.name,
        "dataset_ref": dataset,
        "dataset_sha256": dataset.sha256,
        "dataset_version": dataset.version,
        "input_shape": list(dataset.input_shape),
        "num_classes": dataset.num_classes,
        "class_names": list(dataset.class_names),
    }


def _dataset_import(*, owner, spec: dict, uri: str):
    """Import the spec's dataset by path or URI, then check the rules that need it."""
    try:
        dataset = dataset_import(owner=owner, uri=uri)
    except DatasetError as exc:
        raise SpecInvalid({"dataset": [str(exc)]}) from None
    errors = dataset_errors(spec, dataset)
    if errors:
        raise SpecInvalid(errors)
    return dataset


def _quotas_check(*, owner, shards: int, keep: int) -> None:
    """The owner's quotas, checked with their user row locked: two submissions at once
    count each other instead of both fitting in the last slot."""
    get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
    active = Job.objects.filter(owner=owner).active()
    quotas.check(owner, "checkpoints_per_job", used=0, asked=keep, field="keep_checkpoints")
    quotas.check(owner, "active_jobs", used=active.count(), asked=1)
    in_flight = active.aggregate(n=Sum("num_workers"))["n"] or 0
    quotas.check(owner, "shards_in_flight", used=in_flight, asked=shards, field="num_workers")
    quotas.check(owner, "stored_bytes", used=stored_bytes(owner), asked=0)


def job_create(*, owner, spec: dict, sweep=None, trial_number: int | None = None) -> Job:
    """Store a job from a validated spec (``jobs.specs``) within the owner's quotas
    (QuotaExceeded otherwise); epoch 1 is launched once the row is committed.
    ``threads`` left out of the spec is 0 until the first worker that trains a shard
    fixes it from its own cores (``job_threads_fix``)."""
    shards = spec["num_workers"]
    with transaction.atomic():
        _quotas_check(
            owner=owner, shards=shards, keep=spec.get("keep_checkpoints", settings.TENSORFLEET_KEEP_CHECKPOINTS)
        )
        dataset = spec["dataset"]
        if isinstance(dataset, DatasetImport):
            dataset = _dataset_import(owner=owner, spec=spec, uri=dataset.uri)
        gone = init_from_lock(spec.get("init_from"))  # the source stays until this commits
        if gone:
            raise SpecInvalid({"init_from": [gone]})
        job = Job.objects.create(
            owner=owner,
            name=spec.get("name", ""),
            model_type=spec["model_type"],
            **_dataset_fields(dataset),
            dataset_size=spec.get("dataset_size"),
            num_workers=shards,
            epochs=spec["epochs"],
            batch_size=spec["batch_size"],
            learning_rate=spec["learning_rate"],
            optimizer=spec["optimizer"],
            momentum=spec.get("momentum", 0.0),
            seed=spec["seed"],
            queue=spec["queue"],
            threads=spec.get("threads") or 0,
            keep_checkpoints=spec.get("keep_checkpoints", settings.TENSORFLEET_KEEP_CHECKPOINTS),
            total_tasks=shards * spec["epochs"],
            rounds_per_epoch=0 if spec.get("sync_every_steps") else 1,  # counted by the first worker (job_rounds_fix)
            sweep=sweep,
            trial_number=trial_number,
            **{field: spec[field] for field in RECIPE_FIELDS if field in spec},
            **validation_fields(spec.get("validation", DEFAULT_FRACTION)),
            init_from=spec.get("init_from"),
            project=spec.get("project"),
            note=spec.get("note", ""),
        )
        if spec.get("tags"):
            projects.tags_set(obj=job, names=spec["tags"])
        transaction.on_commit(lambda: launch.job_launch(job.id))
    return job


def job_threads_fix(*, job_id, threads: int) -> int:
    """The job's torch thread count per shard: the first worker to ask records its own
    choice, and every later task of the job (retries and resumes too) trains with it,
    since the count is part of the arithmetic (docs/ARCHITECTURE: determinism)."""
    Job.objects.filter(id=job_id, threads=0).update(threads=threads)
    return Job.objects.filter(id=job_id).values_list("threads", flat=True).get()


def job_rounds_fix(*, job_id, rounds: int) -> int:
    """The job's rounds per epoch (``sync_every_steps``): the first worker to count them
    from the data records its count, and its progress then counts every round's shards.
    Every worker counts the same; the recorded count is returned."""
    Job.objects.filter(id=job_id, rounds_per_epoch=0).update(
        rounds_per_epoch=rounds, total_tasks=F("num_workers") * F("epochs") * rounds
    )
    return Job.objects.filter(id=job_id).values_list("rounds_per_epoch", flat=True).get()


def job_cancel(*, job: Job, reason: str = "") -> Job:
    """Stop a queued or running job: no new epoch starts, queued shards are revoked,
    and running shards stop at their next cancellation check. ``reason`` goes to
    ``error`` (a sweep's early stop says "early-stopped"); checkpoints stay."""
    with transaction.atomic():
        updated = Job.objects.filter(id=job.id, status__in=ACTIVE_STATUSES).update(
            status=Status.CANCELLED, finished_at=timezone.now(), error=reason
        )
        if not updated:
            raise JobNotActive(f"job is already {_status_now(job.id)}")
        queued = list(Task.objects.filter(job=job, status=Status.QUEUED).values_list("celery_id", flat=True))
        Task.objects.filter(job=job, status=Status.QUEUED).update(status=Status.CANCELLED)
        transaction.on_commit(lambda: _messages_drop(job.queue, [cid for cid in queued if cid]))
        # Read while the update's row lock is held: a delete racing this one waits, so
        # the cancelled job can be answered even if it is deleted the moment this commits.
        job = Job.objects.get(id=job.id)
    signals.job_ended.send(sender=Job, job_id=job.id)
    return job


def _status_now(job_id) -> str:
    """The job's status as committed; JobGone when a racing request deleted it."""
    status = Job.objects.filter(id=job_id).values_list("status", flat=True).first()
    if status is None:
        raise JobGone("the job was deleted")
    return status


def _messages_drop(queue: str, celery_ids: list[str]) -> None:
    """A cancelled job's queued shards: revoked on the workers (for a message one holds)
    and taken out of the broker's queue, so nothing is left for no one to consume."""
    orchestration.revoke(celery_ids)
    try:
        pending_messages.messages_remove(queue, set(celery_ids))
    except Exception:  # noqa: BLE001 - the job is cancelled either way; revoked messages are dropped when read
        logger.warning("could not remove the messages of a cancelled job from queue %s", queue, exc_info=True)


def job_fail(*, job_id, reason: str, detail: str = "", error_class: str = "") -> bool:
    """Mark an active job failed with a readable reason; False when it had already ended."""
    updated = Job.objects.filter(id=job_id, status__in=ACTIVE_STATUSES).update(
        status=Status.FAILED,
        finished_at=timezone.now(),
        error=reason[:2000],
        error_class=error_class,
        error_detail=detail[:20000],
    )
    if updated:
        logger.warning("job %s failed: %s", job_id, reason)
        signals.job_ended.send(sender=Job, job_id=job_id)
    return bool(updated)


def job_delete(*, job: Job) -> None:
    """Delete a finished job with its rows and every object it wrote to storage (the
    objects once the delete commits, by ``job_rows_deleted``). The API, the admin and the
    commands delete through here.

    The row is locked first and its status read under the lock: a resume committing
    meanwhile is seen (JobNotFinished) instead of a running job being deleted under its
    workers, and the lock order (job, then its tasks) is the one cancel and resume take,
    so the three racing cannot deadlock."""
    with transaction.atomic():
        locked = Job.objects.select_for_update().filter(id=job.id).first()
        if locked is None:
            raise JobGone("the job was deleted")
        if locked.status in ACTIVE_STATUSES:
            raise JobNotFinished(f"job is {locked.status}; cancel it first")
        locked.delete()


def job_rows_deleted(sender, *, instance: Job, **kwargs) -> None:
    """``post_delete`` receiver for Job (connected in ``JobsConfig.ready``): whatever
    deleted the row (``job_delete``, a user deleted with their jobs, the admin, a shell),
    its objects in storage go once the delete commits."""
    job_id = instance.id
    transaction.on_commit(lambda: job_objects_delete(job_id), robust=True)


def job_leftovers_delete(*, job_id) -> bool:
    """A worker's result was refused because the job's row is gone (deleted while it
    trained or aggregated, its objects swept already): sweep again what it wrote since.
    Returns True when the job is gone (and its objects deleted)."""
    if Job.objects.filter(id=job_id).exists():
        return False
    job_objects_delete(job_id)
    return True


def job_resume(*, job: Job) -> int:
    """Continue a cancelled or failed job from its last recorded round (the last epoch's
    checkpoint, or the global state of a round inside an epoch), and launch the round
    after it once this commits. Returns the epoch it restarts in.

    Shards of later rounds start over (their work is deterministic, so the result is
    the same as an uninterrupted run).
    """
    with transaction.atomic():
        locked = Job.objects.select_for_update().filter(id=job.id).first()
        if locked is None:
            raise JobGone("the job was deleted")
        job = locked
        refusal = selectors.job_resume_refusal(job)
        if refusal:
            raise JobNotResumable(refusal)
        # Rounds recorded, up to the last round of the first epoch not recorded (its metrics
        # row is written after the round: an aggregate that failed in between runs again).
        per_epoch = max(1, job.rounds_per_epoch)
        done = min(job.completed_rounds, job.completed_epochs * per_epoch + per_epoch - 1)
        restart, round = done // per_epoch + 1, done % per_epoch + 1
        later = Q(epoch__gt=restart) | Q(epoch=restart, round__gte=round)
        job.tasks.filter(later).update(status=Status.QUEUED, error="", error_class="", heartbeat_at=None)
        job.status = Status.RUNNING
        job.finished_at = None
        job.error = job.error_class = job.error_detail = ""
        job.completed_tasks = job.tasks.filter(status=Status.SUCCEEDED).count()
        job.save(
            update_fields=[
                "status",
                "finished_at",
                "error",
                "error_class",
                "error_detail",
                "completed_tasks",
                "updated_at",
            ]
        )
        transaction.on_commit(lambda: launch.launch_at(job.id, restart, round))
    return restart
