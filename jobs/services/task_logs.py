"""Writes to the log of a shard's task or of an epoch's aggregate (``TaskLog``).

A worker buffers its lines and hands them here a few at a time (workers/log_capture.py):
at the start, at most once per ``TENSORFLEET_TASK_LOG_PROGRESS_SECONDS`` while it trains,
and at the end or the error. Each call is one row lock and one update; the row keeps the
last ``TENSORFLEET_TASK_LOG_LINES`` lines and ``TENSORFLEET_TASK_LOG_BYTES`` bytes, and
counts the older lines it dropped. Lines from a retried delivery follow the earlier ones.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import IntegrityError, transaction

from jobs.models import Job, TaskLog

logger = logging.getLogger(__name__)
MAX_LINE_CHARS = 2000


def log_trim(lines: list[str], *, max_lines: int, max_bytes: int) -> tuple[list[str], int]:
    """The newest lines within both caps, and how many older ones were left out."""
    kept: list[str] = []
    size = 0
    for line in reversed(lines[-max_lines:] if max_lines > 0 else []):
        size += len(line.encode()) + 1
        if size > max_bytes:
            break
        kept.append(line)
    kept.reverse()
    return kept, len(lines) - len(kept)


def task_log_append(*, job_id, epoch: int, kind: str, shard: int = 0, lines: list[str]) -> bool:
    """Add ``lines`` to the log, trimmed to the caps. False when the job is gone (its
    logs went with it); a log is never worth failing the work it describes."""
    if not lines:
        return True
    lines = [line.replace("\r", "").replace("\n", " | ")[:MAX_LINE_CHARS] for line in lines]  # one row a line
    try:
        with transaction.atomic():
            if not Job.objects.filter(id=job_id).exists():
                return False
            log, _ = TaskLog.objects.select_for_update().get_or_create(
                job_id=job_id, epoch=epoch, kind=kind, shard=shard
            )
            old = log.text.split("\n") if log.text else []
            kept, dropped = log_trim(
                old + lines,
                max_lines=settings.TENSORFLEET_TASK_LOG_LINES,
                max_bytes=settings.TENSORFLEET_TASK_LOG_BYTES,
            )
            log.text, log.lines, log.dropped = "\n".join(kept), len(kept), log.dropped + dropped
            log.save(update_fields=["text", "lines", "dropped", "updated_at"])
    except IntegrityError:  # deleted between the check and the insert
        logger.info("job %s is gone; its %s log for epoch %s is not kept", job_id, kind, epoch)
        return False
    return True
