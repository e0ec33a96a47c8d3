"""Bytes in object storage under deterministic keys, through Django's storage API.

Keys are chosen by the caller and are the same on every try, so a retried task
overwrites its own earlier output with the same bytes (the default storage is
configured to overwrite rather than rename).
"""

from __future__ import annotations

from contextlib import contextmanager

from botocore.exceptions import ClientError
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage


class StorageUnavailable(ConnectionError):
    """The object store answered with a server error (5xx): worth retrying."""


@contextmanager
def storage_errors():
    """Turn S3's 5xx answers (a store starting up, overloaded) into a retriable error."""
    try:
        yield
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status >= 500 or exc.response.get("Error", {}).get("Code") in (
            "InternalError",
            "ServiceUnavailable",
            "SlowDown",
        ):
            raise StorageUnavailable(str(exc)) from exc
        raise


class StorageKeyMismatch(RuntimeError):
    """The storage renamed an object instead of overwriting it."""


def blob_write(key: str, data: bytes) -> str:
    with storage_errors():
        name = default_storage.save(key, ContentFile(data))
    if name != key:
        raise StorageKeyMismatch(f"storage wrote {name!r} instead of {key!r}; enable overwriting")
    return name


def blob_read(key: str) -> bytes:
    with storage_errors(), default_storage.open(key, "rb") as fh:
        return fh.read()


def blob_delete(key: str) -> None:
    with storage_errors():
        default_storage.delete(key)


def job_prefix(job_id) -> str:
    return f"jobs/{job_id}"


def _work(job_id, epoch: int, round: int) -> str:
    """A round's work folder; round 1 keeps the epoch's folder of before rounds existed."""
    return f"{job_prefix(job_id)}/work/e{epoch:04d}" + (f"/r{round:04d}" if round > 1 else "")


def shard_weights_key(job_id, epoch: int, shard: int, round: int = 1) -> str:
    return f"{_work(job_id, epoch, round)}/shard-{shard:03d}.weights.safetensors"


def shard_optimizer_key(job_id, epoch: int, shard: int, round: int = 1) -> str:
    return f"{_work(job_id, epoch, round)}/shard-{shard:03d}.optimizer.safetensors"


def round_state_key(job_id, sha256: str) -> str:
    """The global weights and outer state after a round, content-addressed: the same
    bytes have one key, and a key names its bytes (a worker's cache is keyed by it)."""
    return f"{job_prefix(job_id)}/work/rounds/{sha256}.safetensors"


def checkpoint_key(job_id, epoch: int, kind: str) -> str:
    name = "final" if kind == "final" else f"epoch-{epoch:04d}"
    return f"{job_prefix(job_id)}/checkpoints/{name}.safetensors"
