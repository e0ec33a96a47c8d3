"""Create the configured S3 buckets when they are missing."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError
from django.core.files.storage import storages


def s3_buckets() -> dict[str, Any]:
    """bucket name -> a boto3 client, for every storage alias backed by S3."""
    out: dict[str, Any] = {}
    for alias in ("default", "datasets"):
        storage = storages[alias]
        bucket = getattr(storage, "bucket_name", None)
        if bucket:
            out[bucket] = storage.connection.meta.client  # type: ignore[attr-defined]  # S3Storage
    return out


def ensure_buckets() -> list[tuple[str, bool]]:
    """(bucket, created) for each S3 bucket the settings name; empty for local storage."""
    result = []
    for bucket, client in s3_buckets().items():
        try:
            client.head_bucket(Bucket=bucket)
            result.append((bucket, False))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise
            client.create_bucket(Bucket=bucket)
            result.append((bucket, True))
    return result
