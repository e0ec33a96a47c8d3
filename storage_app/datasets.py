"""Datasets: check an upload, store it once under its sha256, import from a path or
an s3:// URI, delete when no running job needs it."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from django.conf import settings
from django.db import IntegrityError, transaction

from storage_app.formats import FORMATS, DatasetFormatError, guess_format, idx_members, inspect_file, zip_idx_folder
from storage_app.models import Dataset
from storage_app.storages import datasets_storage

EXTENSIONS = {"csv": "csv", "npz": "npz", "idx": "zip"}
PLATFORM_PREFIXES = ("jobs/", "datasets/")


class DatasetError(ValueError):
    """A dataset request that cannot be honoured; ``field`` names the input at fault."""

    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(message)
        self.field, self.status = field, status


class DatasetInUse(Exception):
    pass


def dataset_key(sha256: str, fmt: str) -> str:
    return f"datasets/{sha256[:2]}/{sha256}.{EXTENSIONS[fmt]}"


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_create(*, owner, name: str, path: Path, fmt: str | None, label_column: str, source: str = "") -> Dataset:
    """Check the file at ``path``, store it (once per content) and record it for ``owner``.

    Nothing is left in storage or the database when any check fails.
    """
    fmt = fmt or guess_format(path.name) or guess_format(source)
    if fmt not in FORMATS:
        raise DatasetError("format", f"cannot tell the format; give one of {', '.join(FORMATS)}")
    size = path.stat().st_size
    if size > settings.TENSORFLEET_MAX_DATASET_BYTES:
        raise DatasetError(
            "file", f"the file is {size} bytes; the limit is {settings.TENSORFLEET_MAX_DATASET_BYTES}", 413
        )
    if Dataset.objects.filter(owner=owner, name=name).exists():
        raise DatasetError("name", f"you already have a dataset named {name!r}")
    try:
        info = inspect_file(path, fmt, label_column)
    except DatasetFormatError as exc:
        raise DatasetError("file", str(exc)) from None
    sha = _sha256_of(path)
    key = dataset_key(sha, fmt)
    storage = datasets_storage()
    stored_here = False
    if not storage.exists(key):  # content-addressed: the same bytes are stored once
        with open(path, "rb") as fh:
            saved = storage.save(key, fh)
        if saved != key:
            storage.delete(saved)
            raise RuntimeError(f"storage renamed {key!r} to {saved!r}; enable overwriting")
        stored_here = True
    try:
        with transaction.atomic():
            return Dataset.objects.create(
                owner=owner,
                name=name,
                format=fmt,
                file=key,
                sha256=sha,
                size=size,
                num_samples=info.num_samples,
                input_shape=list(info.input_shape),
                num_classes=info.num_classes,
                label_column=label_column if fmt == "csv" else "",
                source=source[:1000],
            )
    except IntegrityError:
        if stored_here and not Dataset.objects.filter(sha256=sha).exists():
            storage.delete(key)
        raise DatasetError("name", f"you already have a dataset named {name!r}") from None
    except Exception:
        if stored_here and not Dataset.objects.filter(sha256=sha).exists():
            storage.delete(key)
        raise


def _import_local(path: str, workdir: Path) -> tuple[Path, str | None]:
    target = Path(path).resolve()
    roots = [Path(r).resolve() for r in settings.TENSORFLEET_DATASET_IMPORT_ROOTS]
    if not any(target == root or root in target.parents for root in roots):
        allowed = ", ".join(str(r) for r in roots) or "none"
        raise DatasetError("dataset_path", f"{path} is outside the folders datasets may be imported from ({allowed})")
    if target.is_dir():
        names = [p.name for p in target.iterdir() if p.is_file()]
        try:
            members = idx_members(names)
        except DatasetFormatError as exc:
            raise DatasetError("dataset_path", f"{path}: {exc}") from None
        out = workdir / "idx.zip"
        out.write_bytes(zip_idx_folder({n: (target / n).read_bytes() for n in members.values()}))
        return out, "idx"
    if not target.is_file():
        raise DatasetError("dataset_path", f"{path} does not exist")
    out = workdir / target.name
    shutil.copyfile(target, out)
    return out, None


def _import_s3(uri: str, workdir: Path) -> tuple[Path, str | None]:
    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket:
        raise DatasetError("dataset_path", f"{uri} names no bucket")
    own = {settings.AWS_STORAGE_BUCKET_NAME, settings.DATASETS_BUCKET} - {""}
    if bucket in own and key.startswith(PLATFORM_PREFIXES):
        raise DatasetError("dataset_path", "the platform's own objects cannot be imported as a dataset")
    client = datasets_storage().connection.meta.client
    if not key or key.endswith("/"):
        listed = client.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])
        names = [o["Key"] for o in listed]
        try:
            members = idx_members(names)
        except DatasetFormatError as exc:
            raise DatasetError("dataset_path", f"{uri}: {exc}") from None
        files = {n.rsplit("/", 1)[-1]: client.get_object(Bucket=bucket, Key=n)["Body"].read() for n in members.values()}
        out = workdir / "idx.zip"
        out.write_bytes(zip_idx_folder(files))
        return out, "idx"
    out = workdir / key.rsplit("/", 1)[-1]
    try:
        client.download_file(bucket, key, str(out))
    except client.exceptions.ClientError as exc:
        raise DatasetError("dataset_path", f"cannot read {uri}: {exc}") from None
    return out, None


def dataset_import(*, owner, uri: str, fmt: str | None = None, label_column: str = "label") -> Dataset:
    """A dataset from a path the API can read (under the import roots) or an s3:// URI.
    Imported once per owner and content: the same bytes give back the same dataset."""
    with tempfile.TemporaryDirectory(prefix="tf-import-") as tmp:
        workdir = Path(tmp)
        path, detected = _import_s3(uri, workdir) if uri.startswith("s3://") else _import_local(uri, workdir)
        fmt = fmt or detected or guess_format(path.name)
        sha = _sha256_of(path)
        existing = Dataset.objects.filter(owner=owner, sha256=sha).first()
        if existing is not None:
            return existing
        name = f"{os.path.basename(uri.rstrip('/')) or 'dataset'}-{sha[:8]}"
        return dataset_create(owner=owner, name=name, path=path, fmt=fmt, label_column=label_column, source=uri)


def dataset_delete(*, dataset: Dataset) -> None:
    """Delete the record, and the object when no other record shares its content."""
    from jobs.models import ACTIVE_STATUSES

    with transaction.atomic():
        if dataset.jobs.filter(status__in=ACTIVE_STATUSES).exists():
            raise DatasetInUse(f"dataset {dataset.name!r} is used by a queued or running job")
        key, sha = dataset.file.name, dataset.sha256
        dataset.delete()
        if not Dataset.objects.filter(sha256=sha).exists():
            transaction.on_commit(lambda: datasets_storage().delete(key))
