"""The reconciler: find work whose message was lost and dispatch it again.

Run periodically by Celery beat (``jobs.reconcile`` on the ``control`` queue). Each
rule looks only at the database and the broker, and every dispatch it makes is safe
to duplicate: tasks claim their rows conditionally, aggregates record an epoch once.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Exists, ExpressionWrapper, F, IntegerField, Max, OuterRef, Q
from django.utils import timezone

from jobs import orchestration, pending_messages
from jobs.failure_classes import WORKER_LOST
from jobs.models import ACTIVE_STATUSES, EpochMetric, Job, Status, Task
from jobs.services import claims, launch, lifecycle, sweeps

logger = logging.getLogger(__name__)


def reconcile() -> dict[str, int]:
    now = timezone.now()
    actions: Counter[str] = Counter()
    _stale_running_shards(now, actions)
    _lost_queued_shards(now, actions)
    _epochs_without_aggregate(now, actions)
    _jobs_with_nothing_launched(now, actions)
    _sweeps_with_free_slots(actions)
    if actions:
        logger.warning("reconciler: %s", dict(actions))
    return dict(actions)


def _stale_running_shards(now, actions: Counter) -> None:
    """A shard `running` whose worker stopped sending heartbeats: its worker died."""
    cutoff = now - timedelta(seconds=settings.TENSORFLEET_HEARTBEAT_TIMEOUT)
    stale = Task.objects.select_related("job").filter(
        status=Status.RUNNING, job__status=Status.RUNNING, heartbeat_at__lt=cutoff
    )
    for task in stale:
        if task.lost + 1 >= settings.TENSORFLEET_MAX_ATTEMPTS:
            reason = (
                f"shard {task.shard} of epoch {task.epoch}{f', round {task.round}' if task.round > 1 else ''} lost its worker {task.lost + 1} times "
                f"(last on {task.worker or 'an unknown worker'})"
            )
            claims.task_fail(
                job_id=task.job_id,
                epoch=task.epoch,
                round=task.round,
                shard=task.shard,
                error=reason,
                error_class=WORKER_LOST,
            )
            lifecycle.job_fail(job_id=task.job_id, reason=reason, error_class=WORKER_LOST)
            actions["failed_worker_lost"] += 1
        elif launch.shard_redispatch(task, worker_lost=True):
            logger.warning("shard %s: no heartbeat from %s since %s; sent again", task, task.worker, task.heartbeat_at)
            actions["redispatched_stale"] += 1


def _lost_queued_shards(now, actions: Counter) -> None:
    """A shard `queued` whose message no live worker will run: gone from the broker (e.g.
    Redis restarted empty), or delivered to a worker that has since died. The second kind
    sits in Redis's unacknowledged set until the visibility timeout (hours) puts it back;
    once it has been there longer than the heartbeat timeout and no live worker reports
    holding it (running, prefetched, or waiting out a retry's countdown), it is sent again.
    A late redelivery of the old message is harmless: the shard's row is claimed once."""
    cutoff = now - timedelta(seconds=settings.TENSORFLEET_REDISPATCH_AFTER)
    waiting = list(
        Task.objects.select_related("job").filter(
            status=Status.QUEUED, job__status__in=ACTIVE_STATUSES, dispatched_at__lt=cutoff
        )
    )
    if not waiting:
        return
    held = pending_messages.broker_holdings(sorted({t.job.queue for t in waiting}))
    if held is None:
        return  # a broker we cannot look into: nothing to compare against
    stale_before = now.timestamp() - settings.TENSORFLEET_HEARTBEAT_TIMEOUT
    suspects = [t for t in waiting if t.celery_id in held.unacked and held.unacked[t.celery_id] < stale_before]
    live = pending_messages.ids_held_by_live_workers() if suspects else set()
    for task in waiting:
        if task.celery_id not in held:
            reason, key = "its message is gone from the broker", "redispatched_lost"
        elif task in suspects and live is not None and task.celery_id not in live:
            reason, key = "its message is held by a worker that is gone", "redispatched_orphaned"
        else:
            continue
        if launch.shard_redispatch(task):
            logger.warning("shard %s: %s; sent again", task, reason)
            actions[key] += 1


def _epochs_without_aggregate(now, actions: Counter) -> None:
    """Every shard of a round succeeded a while ago, but the round is not recorded
    (its aggregate's message or worker was lost). One grouped query for every running
    job, not one per job: a pass stays cheap with thousands of active jobs. A round inside
    its epoch is recorded when the job counts it (``completed_rounds``), the round ending
    an epoch when the epoch's metrics row exists."""
    cutoff = now - timedelta(seconds=settings.TENSORFLEET_REDISPATCH_AFTER)
    recorded = EpochMetric.objects.filter(job=OuterRef("job_id"), epoch=OuterRef("epoch"))
    grouped = (
        Task.objects.filter(job__status=Status.RUNNING)
        .filter(~Exists(recorded))
        .annotate(at=(F("epoch") - 1) * F("job__rounds_per_epoch") + F("round"))
        .filter(Q(at__gt=F("job__completed_rounds")) | Q(round__gte=F("job__rounds_per_epoch")))
        .values("job_id", "epoch", "round")
        .annotate(total=Count("id"), done=Count("id", filter=Q(status=Status.SUCCEEDED)), last=Max("finished_at"))
        .filter(total=F("job__num_workers"), done=F("total"), last__lt=cutoff)
    )
    rows = list(grouped)
    jobs = Job.objects.in_bulk({row["job_id"] for row in rows})
    for row in rows:
        orchestration.aggregate_send(jobs[row["job_id"]], row["epoch"], row["round"])
        actions["aggregates_dispatched"] += 1


def _jobs_with_nothing_launched(now, actions: Counter) -> None:
    """A queued or running job whose next round was never sent (the broker was down then):
    no row at the round after its last recorded one (``completed_rounds`` + 1 counted
    over the epochs; before the rounds are counted, round 1 of epoch 1)."""
    cutoff = now - timedelta(seconds=settings.TENSORFLEET_REDISPATCH_AFTER)
    at = ExpressionWrapper((F("epoch") - 1) * OuterRef("rounds_per_epoch") + F("round"), output_field=IntegerField())
    next_round = ExpressionWrapper(OuterRef("completed_rounds") + 1, output_field=IntegerField())
    next_rows = Task.objects.annotate(at=at).filter(job=OuterRef("pk"), at=next_round)
    stuck = Job.objects.filter(
        status__in=ACTIVE_STATUSES, updated_at__lt=cutoff, completed_epochs__lt=F("epochs")
    ).filter(~Exists(next_rows))
    for job_id, done, per_epoch in stuck.values_list("id", "completed_rounds", "rounds_per_epoch"):
        per_epoch = max(1, per_epoch)
        launch.launch_at(job_id, done // per_epoch + 1, done % per_epoch + 1)
        actions["epochs_launched"] += 1


def _sweeps_with_free_slots(actions: Counter) -> None:
    """A running sweep with a free slot: the end hook of one of its trials was lost (its
    worker died right after the trial ended). Starts the next trials, or finishes the sweep."""
    started = sweeps.sweeps_reconcile()
    if started:
        actions["sweep_trials_started"] += started
