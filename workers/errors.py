"""Why a task failed, and whether trying again can help.

Classes (their names in ``jobs.failure_classes``): ``infrastructure`` (storage, broker
or database unreachable: retried with backoff and jitter), ``worker_lost`` (the process
died: the reconciler dispatches the shard again, a few times at most), ``time_limit``
and ``out_of_memory`` (the same work would fail again: the job fails), ``diverged``
(the loss or the weights became NaN or infinite: the job fails, and it cannot resume,
since the same spec would diverge again), ``user_error`` (the spec or the data is
wrong: the job fails at once).
"""

from __future__ import annotations

from botocore.exceptions import ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded, WorkerLostError
from django.db import InterfaceError, OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from jobs.failure_classes import DIVERGED, INFRASTRUCTURE, OUT_OF_MEMORY, TIME_LIMIT, USER_ERROR, WORKER_LOST

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    EndpointConnectionError,
    ConnectionClosedError,
    ConnectTimeoutError,
    ReadTimeoutError,
    OperationalError,
    InterfaceError,
    RedisConnectionError,
    RedisTimeoutError,
    ConnectionError,
    TimeoutError,
)

RETRIED = {INFRASTRUCTURE, WORKER_LOST}


class ShardsPending(Exception):
    """The aggregate step ran before every shard of its epoch had finished."""


class Diverged(ArithmeticError):
    """Training produced a NaN or infinite loss or weights. Its message says where
    ("loss became NaN at epoch 2, shard 1") and is the job's error as it stands."""


def classify(exc: BaseException) -> str:
    if isinstance(exc, Diverged):
        return DIVERGED
    if isinstance(exc, TRANSIENT_ERRORS):
        return INFRASTRUCTURE
    if isinstance(exc, WorkerLostError):
        return WORKER_LOST
    if isinstance(exc, SoftTimeLimitExceeded | TimeLimitExceeded):
        return TIME_LIMIT
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return OUT_OF_MEMORY
    return USER_ERROR


def is_broker_error(exc: BaseException) -> bool:
    """Redis (broker and result backend) unreachable: nothing can be sent until it is back."""
    from kombu.exceptions import OperationalError as KombuOperationalError

    return isinstance(exc, RedisConnectionError | RedisTimeoutError | KombuOperationalError)


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    if isinstance(exc, Diverged):
        return text  # written to be read as it is
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
