"""One console line per job event for ``runfleet``: submitted, each epoch done with its
validation accuracy, and how it ended. The supervisor's loop calls ``JobEvents.poll``
about once a second; each poll is one query over the jobs that are queued or running,
were being followed, or were created since the last poll (an index on status and the
created_at ordering keep it cheap), plus one for the epochs of jobs that moved.

Updates made with ``QuerySet.update`` do not touch ``updated_at``, so the poll compares
each followed job's status and completed epochs with what it last saw instead."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.db import DatabaseError
from django.db.models import Q
from django.utils import timezone

from jobs.models import ACTIVE_STATUSES, EpochMetric, Job, Status
from jobs.services.sweeps import EARLY_STOPPED
from tensorfleet_site.dashboard import formatting

OVERLAP = timedelta(seconds=5)
FIELDS = ("id", "name", "model_type", "dataset", "status", "completed_epochs", "epochs", "num_workers")
FIELDS += ("best_val_accuracy", "error", "stop_reason", "created_at", "started_at", "finished_at")


@dataclass
class Seen:
    status: str
    epochs: int


def job_label(row: dict) -> str:
    return f"job {str(row['id'])[:8]} {row['name'] or row['model_type'] + '/' + row['dataset']}"


def ended_line(row: dict) -> str:
    label = job_label(row)
    took = ""
    if row["started_at"] and row["finished_at"]:
        took = " in " + formatting.duration((row["finished_at"] - row["started_at"]).total_seconds())
    best = f", best val accuracy {formatting.accuracy(row['best_val_accuracy'])}" if row["best_val_accuracy"] else ""
    if row["status"] == Status.SUCCEEDED:
        early = f" (stopped early: {row['stop_reason']})" if row["stop_reason"] else ""
        return f"{label} succeeded after {row['completed_epochs']} epochs{took}{best}{early}"
    if row["status"] == Status.CANCELLED and row["error"] == EARLY_STOPPED:
        return f"{label} early-stopped by its sweep after epoch {row['completed_epochs']}{best}"
    if row["status"] == Status.CANCELLED:
        return f"{label} cancelled after {row['completed_epochs']} of {row['epochs']} epochs"
    return f"{label} failed: {(row['error'] or 'no reason recorded').splitlines()[0][:200]}"


class JobEvents:
    """Follows the jobs and says what changed; ``say`` writes one line to the console."""

    def __init__(self, say: Callable[[str], None]):
        self.say = say
        self.started = self.since = timezone.now()
        # Jobs already there when the fleet starts are followed without a "submitted" line.
        self.seen = {
            row["id"]: Seen(row["status"], row["completed_epochs"])
            for row in Job.objects.filter(status__in=ACTIVE_STATUSES).values("id", "status", "completed_epochs")
        }
        self.ended: set = set()  # said how they ended; the look-back must not say it twice

    def poll(self) -> None:
        """Say what changed since the last poll; a busy database (SQLite locked) skips a turn."""
        try:
            self._poll()
        except DatabaseError:
            pass

    def _poll(self) -> None:
        now = timezone.now()
        query = Q(status__in=ACTIVE_STATUSES) | Q(created_at__gte=self.since) | Q(id__in=list(self.seen))
        rows = list(Job.objects.filter(query).order_by("created_at").values(*FIELDS))
        # A row is inserted with created_at before its transaction commits: look back a little.
        self.since = max(now - OVERLAP, self.started)
        moved = [r["id"] for r in rows if r["completed_epochs"] > self.seen.get(r["id"], Seen("", 0)).epochs]
        accuracy = {
            (m["job_id"], m["epoch"]): m["val_accuracy"]
            for m in EpochMetric.objects.filter(job_id__in=moved).values("job_id", "epoch", "val_accuracy")
        }
        for row in rows:
            if row["id"] not in self.ended:
                self._report(row, accuracy)

    def _report(self, row: dict, accuracy: dict) -> None:
        before = self.seen.get(row["id"])
        if before is None:
            workers = f", {row['num_workers']} shards" if row["num_workers"] > 1 else ""
            self.say(
                f"{job_label(row)} submitted: {row['model_type']} on {row['dataset']}, {row['epochs']} epochs{workers}"
            )
            before = self.seen[row["id"]] = Seen(Status.QUEUED, 0)
        for epoch in range(before.epochs + 1, row["completed_epochs"] + 1):
            acc = accuracy.get((row["id"], epoch))
            shown = f", val accuracy {formatting.accuracy(acc)}" if acc is not None else ""
            self.say(f"{job_label(row)} epoch {epoch}/{row['epochs']} done{shown}")
        before.epochs = max(before.epochs, row["completed_epochs"])
        if row["status"] not in ACTIVE_STATUSES:
            self.say(ended_line(row))
            del self.seen[row["id"]]
            self.ended.add(row["id"])
        else:
            before.status = row["status"]
