"""What a shard or an aggregate says while it runs, kept where the API shows it
(``jobs.services.task_logs``; GET /api/v1/jobs/<id>/tasks/<task id>/log).

``logged("shard")`` wraps ``workers.steps.shard_step`` (``"aggregate"``: ``aggregate_step``)
and records its start, the warnings logged meanwhile (by the workers, jobs and storage
code, and Python's warnings), a progress line at the heartbeat (``progress()``, called
from the shard's cancellation check), and how it ended: done, skipped, stopped or the
error. Cheap by design: lines wait in memory and are written at the start of a shard, at
most once per ``TENSORFLEET_TASK_LOG_PROGRESS_SECONDS`` while it trains, and once at the
end; never once per batch. An aggregate writes once, at its end. An aggregate that waits
for its shards (ShardsPending, retried every 2 s) writes nothing.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime

from django.conf import settings

from jobs.services import task_logs
from workers.errors import ShardsPending

CAPTURED_LOGGERS = ("workers", "jobs", "storage_app")
_current: contextvars.ContextVar[TaskLogBuffer | None] = contextvars.ContextVar("task_log", default=None)


class TaskLogBuffer:
    """The lines of one task not yet written, and when they were last written."""

    def __init__(self, *, job_id, epoch: int, kind: str, shard: int = 0):
        self.where = {"job_id": job_id, "epoch": int(epoch), "kind": kind, "shard": int(shard)}
        self.pending: list[str] = []
        self.started = time.monotonic()
        self.last_write = self.started

    def add(self, level: str, message: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.pending.append(f"{stamp} {level} {message}")

    def write(self) -> None:
        lines, self.pending = self.pending, []
        self.last_write = time.monotonic()
        try:
            task_logs.task_log_append(**self.where, lines=lines)
        except Exception:  # noqa: BLE001 - a log that cannot be written must not fail the work
            logging.getLogger(__name__).warning("task log of %s not written", self.where, exc_info=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class _ToBuffer(logging.Handler):
    """Copies the records of the captured loggers (warnings and up; the workers' own
    info too) into the running task's buffer, when there is one."""

    def emit(self, record: logging.LogRecord) -> None:
        buffer = _current.get()
        if buffer is None or record.name == __name__:
            return
        ours = record.name.split(".")[0] in CAPTURED_LOGGERS
        if record.levelno >= logging.WARNING or (ours and record.levelno >= logging.INFO):
            buffer.add(record.levelname, f"{record.name}: {record.getMessage()}")


_handler = _ToBuffer()


def _install() -> None:
    root = logging.getLogger()
    if _handler not in root.handlers:
        root.addHandler(_handler)


def progress() -> None:
    """A progress line for the running shard, written at most once per
    ``TENSORFLEET_TASK_LOG_PROGRESS_SECONDS`` (with the warnings since the last write)."""
    buffer = _current.get()
    if buffer is None or time.monotonic() - buffer.last_write < settings.TENSORFLEET_TASK_LOG_PROGRESS_SECONDS:
        return
    buffer.add("INFO", f"training, {buffer.elapsed():.1f} s in")
    buffer.write()


def _ended(kind: str, result) -> str:
    if not isinstance(result, dict):
        return "done"
    if result.get("skipped"):
        return "skipped: another delivery holds or finished it, or the job has ended"
    if result.get("stopped"):
        return f"stopped: the job is {result['stopped']}" if kind == "aggregate" else "stopped: the job was cancelled"
    if kind == "aggregate" and "val_accuracy" in result:
        accuracy = result["val_accuracy"]
        return "epoch recorded" + (f", val_accuracy {accuracy:.4f}" if accuracy is not None else " (not evaluated)")
    return "done"


def logged(kind: str) -> Callable:
    """Decorate a step taking ``job_id``, ``epoch`` (and ``shard``) keyword arguments."""

    def decorate(step: Callable) -> Callable:
        @functools.wraps(step)
        def run(**kwargs):
            _install()
            buffer = TaskLogBuffer(
                job_id=kwargs["job_id"], epoch=kwargs["epoch"], kind=kind, shard=kwargs.get("shard", 0)
            )
            where = f"epoch {kwargs['epoch']}" + (f", shard {kwargs['shard']}" if kind == "shard" else "")
            buffer.add("INFO", f"{kind} started: {where}, worker {kwargs.get('worker') or 'this process'}")
            if kind == "shard":
                buffer.write()  # a shard trains for a while: say at once that it started, and where
            token = _current.set(buffer)
            try:
                with warnings.catch_warnings():
                    shown = warnings.showwarning

                    def show(message, category, filename, lineno, file=None, line=None):
                        buffer.add("WARNING", f"{category.__name__}: {message} ({filename}:{lineno})")
                        shown(message, category, filename, lineno, file, line)

                    warnings.showwarning = show
                    result = step(**kwargs)
            except ShardsPending:
                raise  # waiting for shards, retried soon: not worth a line
            except BaseException as exc:
                buffer.add("ERROR", f"{kind} failed after {buffer.elapsed():.1f} s: {type(exc).__name__}: {exc}")
                buffer.write()
                raise
            finally:
                _current.reset(token)
            buffer.add("INFO", f"{_ended(kind, result)} ({buffer.elapsed():.1f} s)")
            buffer.write()
            return result

        return run

    return decorate
