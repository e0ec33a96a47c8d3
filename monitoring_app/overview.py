"""The numbers behind the dashboard's four cards: jobs by status, workers online and
their queues, and the last hour's shard tasks (completed, samples, mean duration).

Scope: staff see the whole fleet, everyone else the jobs and tasks they own (the
workers are shared, so everyone sees them). Every query is cheap: jobs are counted
per status (indexes on status and on owner+status), and the last hour's tasks are a
range on the (status, finished_at) index; nothing reads all tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Avg, Count, Sum
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuError
from redis.exceptions import RedisError

from jobs import selectors
from jobs.models import Status, Task
from monitoring_app import broker_status as broker

WINDOW = timedelta(hours=1)


@dataclass(frozen=True)
class Overview:
    scope: str
    jobs_by_status: dict[str, int]
    workers: list[broker.Worker] | None  # None: the broker did not answer
    window_s: int
    tasks_completed: int
    samples_trained: int
    mean_task_duration_s: float | None
    generated_at: datetime

    @property
    def jobs_total(self) -> int:
        return sum(self.jobs_by_status.values())

    @property
    def workers_online(self) -> int | None:
        return None if self.workers is None else len(self.workers)

    @property
    def workers_by_queue(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for worker in self.workers or []:
            for queue in worker.queues:
                counts[queue] = counts.get(queue, 0) + 1
        return counts


def _online_workers() -> list[broker.Worker] | None:
    try:
        broker.broker_ping()  # fail fast: a broadcast to a dead broker would retry
        return broker.online_workers()
    except (RedisError, KombuError, OSError):
        return None


def overview_for(*, user) -> Overview:
    staff = user.is_staff
    jobs = selectors.jobs_overseen_by(user)
    counts = dict(jobs.order_by().values_list("status").annotate(n=Count("id")))
    now = timezone.now()
    tasks = Task.objects.filter(status=Status.SUCCEEDED, finished_at__gte=now - WINDOW)
    if not staff:
        tasks = tasks.filter(job__owner=user)
    done = tasks.order_by().aggregate(n=Count("id"), samples=Sum("samples"), mean=Avg("duration_s"))
    return Overview(
        scope="all" if staff else "own",
        jobs_by_status={status: counts.get(status, 0) for status in Status.values},
        workers=_online_workers(),
        window_s=int(WINDOW.total_seconds()),
        tasks_completed=done["n"],
        samples_trained=done["samples"] or 0,
        mean_task_duration_s=done["mean"],
        generated_at=now,
    )
