"""Datasets: check an upload, store it once under its sha256, import from a path or
an s3:// URI, delete when no running job needs it."""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files.storage import FileSystemStorage, storages
from django.db import IntegrityError, transaction
from django.db.models import Max

from storage_app.checksums import sha256_of_file
from storage_app.dataset_names import dataset_name_error, dataset_reference
from storage_app.formats import (
    FORMATS,
    LABEL_COLUMN_FORMATS,
    STORED_AS,
    DatasetFormatError,
    DatasetInfo,
    DatasetTooLarge,
    guess_format,
    idx_members,
    prepare_file,
    zip_idx_folder,
)
from storage_app.models import Dataset
from storage_app.storages import datasets_storage
from storage_app.usage import stored_bytes
from tensorfleet_site.quotas import limits as quotas

EXTENSIONS = STORED_AS  # a stored dataset's file extension, by format
PLATFORM_PREFIXES = ("jobs/", "datasets/", "weights/")
S3_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3's rules for a new bucket's name
S3_MAX_KEY_BYTES = 1024
S3_REASONS = {
    "NoSuchBucket": "no such bucket",
    "NoSuchKey": "no such object",
    "404": "no such object",
    "AccessDenied": "access denied",
    "403": "access denied",
    "InvalidBucketName": "not a valid bucket name",
}
IMPORT_NAME_CHARS = 180  # an imported dataset is named "<base name>-<8 hex>"; Dataset.name holds 200


class DatasetError(ValueError):
    """A dataset request that cannot be honoured; ``field`` names the input at fault."""

    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(message)
        self.field, self.status = field, status


class DatasetInUse(Exception):
    pass


def dataset_key(sha256: str, fmt: str) -> str:
    return f"datasets/{sha256[:2]}/{sha256}.{EXTENSIONS[fmt]}"


def dataset_create(
    *, owner, name: str, path: Path, fmt: str | None, label_column: str, source: str = "", image_size=None
) -> Dataset:
    """Check the file at ``path``, store it (once per content) and record it for ``owner``.
    Image folders are decoded first and the NPZ they decode to is stored (``image_size``:
    (height, width), or None for the most common size). Nothing is left in storage or the
    database when any check fails."""
    # The source first: ``path`` may be a temporary file whose random name happens to hold "idx".
    fmt = fmt or guess_format(source, path) or guess_format(path.name, path)
    if fmt not in FORMATS:
        raise DatasetError("format", f"cannot tell the format; give one of {', '.join(FORMATS)}")
    if image_size is not None and fmt != "images":
        raise DatasetError("image_size", f"image_size is for image folders (format 'images'), not {fmt}")
    problem = dataset_name_error(name)
    if problem:
        raise DatasetError("name", problem)
    size = path.stat().st_size
    if size > settings.TENSORFLEET_MAX_DATASET_BYTES:
        raise DatasetError(
            "file", f"the file is {size} bytes; the limit is {settings.TENSORFLEET_MAX_DATASET_BYTES}", 413
        )
    quotas.check(owner, "stored_bytes", used=stored_bytes(owner), asked=size, field="file")
    with tempfile.TemporaryDirectory(prefix="tf-dataset-") as tmp:
        try:
            path, info = prepare_file(path, fmt, label_column, workdir=Path(tmp), image_size=image_size)
        except DatasetTooLarge as exc:
            raise DatasetError("file", str(exc), 413) from None
        except DatasetFormatError as exc:
            raise DatasetError("file", str(exc)) from None
        if path.stat().st_size > size:  # decoded images: the quota counts what is stored
            quotas.check(owner, "stored_bytes", used=stored_bytes(owner), asked=path.stat().st_size, field="file")
        label_column = label_column if fmt in LABEL_COLUMN_FORMATS else ""
        return _dataset_store(
            owner=owner, name=name, fmt=fmt, path=path, info=info, label_column=label_column, source=source
        )


def _dataset_store(*, owner, name: str, fmt: str, path: Path, info: DatasetInfo, label_column: str, source: str):
    sha = sha256_of_file(path)
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
            # A name the owner has gets its next version; the owner's row is locked so
            # that two uploads of one name at once number 2 and 3, not 2 and 2.
            get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
            newest = Dataset.objects.filter(owner=owner, name=name).aggregate(n=Max("version"))["n"] or 0
            return Dataset.objects.create(
                owner=owner,
                name=name,
                version=newest + 1,
                format=fmt,
                file=key,
                sha256=sha,
                size=path.stat().st_size,
                num_samples=info.num_samples,
                input_shape=list(info.input_shape),
                num_classes=info.num_classes,
                class_names=list(info.class_names),
                label_column=label_column,
                source=source.replace("\x00", "")[:1000],
            )
    except IntegrityError:
        if stored_here and not Dataset.objects.filter(sha256=sha).exists():
            storage.delete(key)
        raise DatasetError("name", f"another upload of {name!r} took its version number; send it again") from None
    except Exception:
        if stored_here and not Dataset.objects.filter(sha256=sha).exists():
            storage.delete(key)
        raise


def _refuse(path: str, message: str, status: int = 400) -> DatasetError:
    return DatasetError("dataset_path", f"{path}: {message}", status)


def _open_regular(real: Path, shown: str, budget: int) -> tuple[int, int]:
    """An open descriptor on the regular file at ``real`` and its size. The file is opened
    without following a last-moment symlink and without blocking on a FIFO; a device, a
    FIFO or a file over ``budget`` bytes is refused before a byte is read."""
    fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise _refuse(shown, "not a regular file")
    if info.st_size > budget:
        os.close(fd)
        limit = settings.TENSORFLEET_MAX_DATASET_BYTES
        raise _refuse(shown, f"{info.st_size} bytes would take the import past the limit of {limit} bytes", 413)
    return fd, info.st_size


def _platform_folders() -> list[Path]:
    """Where the platform keeps its own files (every user's stored datasets and
    checkpoints, its state and database), resolved."""
    folders = {Path(settings.MEDIA_ROOT), Path(settings.STATE_DIR)}
    for alias in ("default", "datasets"):
        storage = storages[alias]
        if isinstance(storage, FileSystemStorage):
            folders.add(Path(storage.location))
    return [folder.resolve() for folder in folders]


def _not_the_platforms(real: Path, shown: str) -> Path:
    """``real`` unless it lies in the platform's own folders: an import root that holds them
    (an operator's "/" or "/app") must not reach other users' files, as s3:// must not."""
    if any(real.is_relative_to(folder) for folder in _platform_folders()):
        raise _refuse(shown, "the platform's own files cannot be imported as a dataset")
    return real


def _inside(entry: Path, root: Path, shown: str) -> Path:
    """Where ``entry`` leads, refused when that is outside ``root`` (a symlink out of it)."""
    real = entry.resolve()
    if not real.is_relative_to(root):
        raise _refuse(shown, f"leads outside {root} (a symlink); only files under the import folder are read")
    return _not_the_platforms(real, shown)


def _import_local(path: str, workdir: Path) -> tuple[Path, str | None]:
    """A file, or a folder of IDX files, under one of TENSORFLEET_DATASET_IMPORT_ROOTS.
    Everything read must resolve inside the root that holds the path: the path itself and,
    for a folder, each file read from it. A symlink in an import folder does not reach
    files elsewhere on the API's machine."""
    roots = [Path(r).resolve() for r in settings.TENSORFLEET_DATASET_IMPORT_ROOTS]
    try:
        target = Path(path).resolve()
        root = next((r for r in roots if target.is_relative_to(r)), None)
        if root is None:
            allowed = ", ".join(str(r) for r in roots) or "none"
            raise DatasetError(
                "dataset_path", f"{path} is outside the folders datasets may be imported from ({allowed})"
            )
        _not_the_platforms(target, path)
        if target.is_dir():
            return _import_local_folder(path, target, root, workdir), "idx"
        if not target.exists():
            raise DatasetError("dataset_path", f"{path} does not exist")
        fd, _ = _open_regular(target, path, settings.TENSORFLEET_MAX_DATASET_BYTES)
        out = workdir / target.name
        with os.fdopen(fd, "rb") as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        return out, None
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a name too long, a symlink loop, no access
        if isinstance(exc, DatasetError):
            raise
        reason = getattr(exc, "strerror", None) or str(exc)
        raise DatasetError("dataset_path", f"cannot read {path!r}: {reason}") from None


def _import_local_folder(path: str, target: Path, root: Path, workdir: Path) -> Path:
    entries = {p.name: p for p in target.iterdir() if p.is_symlink() or p.is_file()}
    try:
        members = idx_members(sorted(entries))
    except DatasetFormatError as exc:
        raise DatasetError("dataset_path", f"{path}: {exc}") from None
    limit = settings.TENSORFLEET_MAX_DATASET_BYTES
    budget, files = limit, {}
    for name in sorted(set(members.values())):
        shown = f"{path.rstrip('/')}/{name}"
        fd, _ = _open_regular(_inside(entries[name], root, shown), shown, budget)
        with os.fdopen(fd, "rb") as fh:
            files[name] = fh.read(budget + 1)  # the file may have grown since it was measured
        budget -= len(files[name])
        if budget < 0:
            raise _refuse(path, f"the IDX files add up to more than the limit of {limit} bytes", 413)
    out = workdir / "idx.zip"
    out.write_bytes(zip_idx_folder(files))
    return out


def _s3_places() -> list[tuple[str, str]]:
    """(bucket, key prefix) for each entry of TENSORFLEET_DATASET_IMPORT_S3; a prefix names
    a folder, so "b/data" allows "b/data/x" but not "b/data-private/x"."""
    places = []
    for entry in settings.TENSORFLEET_DATASET_IMPORT_S3:
        bucket, _, prefix = entry.removeprefix("s3://").partition("/")
        places.append((bucket, prefix if not prefix or prefix.endswith("/") else prefix + "/"))
    return places


def _s3_location(uri: str) -> tuple[str, str]:
    """Bucket and key of an s3:// URI, or DatasetError when it is not one the platform may
    read: a malformed bucket or key, a place the operator did not list, the platform's own
    objects (checkpoints, stored datasets) whatever the list says."""
    places = _s3_places()
    if not places:
        raise _refuse(uri, "imports from S3 are not enabled on this platform (TENSORFLEET_DATASET_IMPORT_S3 is empty)")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if bucket not in {b for b, _ in places} and not (S3_BUCKET_NAME.fullmatch(bucket) and ".." not in bucket):
        raise _refuse(uri, f"{bucket!r} is not a valid S3 bucket name")
    *folders, last = key.split("/")
    if len(key.encode()) > S3_MAX_KEY_BYTES or any(ord(c) < 32 for c in key):
        raise _refuse(uri, "not a valid S3 key")
    if any(part in ("", ".", "..") for part in folders) or last in (".", ".."):
        # S3 keeps such keys as written, but some S3 servers read them as paths: refuse both readings.
        raise _refuse(uri, "the key has an empty, '.' or '..' segment; give the object's plain key")
    if not any(bucket == b and key.startswith(prefix) for b, prefix in places):
        allowed = ", ".join(f"s3://{b}/{p}" for b, p in places)
        raise _refuse(uri, f"not under the S3 places datasets may be imported from ({allowed})")
    own = {settings.AWS_STORAGE_BUCKET_NAME, settings.DATASETS_BUCKET} - {""}
    folder = not key or key.endswith("/")
    # A folder import lists everything under its key: "" (the whole bucket) reaches jobs/ as well.
    if bucket in own and any(key.startswith(p) or (folder and p.startswith(key)) for p in PLATFORM_PREFIXES):
        raise _refuse(uri, "the platform's own objects cannot be imported as a dataset")
    return bucket, key


@contextmanager
def _s3_errors(uri: str):
    """S3's answers as DatasetErrors: 400 for what the request got wrong, 503 for an outage."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if status >= 500 or code in ("InternalError", "ServiceUnavailable", "SlowDown"):
            raise _refuse(uri, f"the object store is unavailable ({code or status}); try again later", 503) from None
        raise _refuse(uri, S3_REASONS.get(code, f"cannot read it ({code or status})")) from None
    except ParamValidationError as exc:
        raise _refuse(uri, f"not a valid S3 location ({exc})") from None
    except BotoCoreError as exc:  # no connection, a timeout
        raise _refuse(uri, f"the object store is unavailable ({exc}); try again later", 503) from None


def _import_s3(uri: str, workdir: Path) -> tuple[Path, str | None]:
    bucket, key = _s3_location(uri)
    connection = getattr(datasets_storage(), "connection", None)  # boto3's resource: S3 storage only
    if connection is None:
        raise _refuse(uri, "this platform stores files locally and has no S3 to import from")
    client = connection.meta.client
    limit = settings.TENSORFLEET_MAX_DATASET_BYTES
    with _s3_errors(uri):
        if not key or key.endswith("/"):
            # The folder's own objects, not its subfolders' (a local folder import reads no subfolder either).
            listed = client.list_objects_v2(Bucket=bucket, Prefix=key, Delimiter="/").get("Contents", [])
            sizes = {o["Key"]: o["Size"] for o in listed}
            try:
                members = idx_members(sorted(sizes))
            except DatasetFormatError as exc:
                raise _refuse(uri, str(exc)) from None
            total = sum(sizes[n] for n in set(members.values()))
            if total > limit:
                raise _refuse(uri, f"the IDX files add up to {total} bytes; the limit is {limit} bytes", 413)
            files = {}
            for n in sorted(set(members.values())):
                body = client.get_object(Bucket=bucket, Key=n)["Body"]
                files[n.rsplit("/", 1)[-1]] = body.read(limit + 1)  # the object may have grown since it was listed
            if sum(map(len, files.values())) > limit:
                raise _refuse(uri, f"the IDX files add up to more than the limit of {limit} bytes", 413)
            out = workdir / "idx.zip"
            out.write_bytes(zip_idx_folder(files))
            return out, "idx"
        got = client.get_object(Bucket=bucket, Key=key)
        body = got["Body"]
        try:
            if got["ContentLength"] > limit:
                raise _refuse(uri, f"the object is {got['ContentLength']} bytes; the limit is {limit} bytes", 413)
            # The object's own name (its extension tells the format), cut to what a file system takes.
            name = key.rsplit("/", 1)[-1].encode()[-200:].decode(errors="ignore") or "dataset"
            out, written = workdir / name, 0
            with open(out, "wb") as fh:
                for chunk in iter(lambda: body.read(1 << 20), b""):
                    written += len(chunk)
                    if written > limit:
                        raise _refuse(uri, f"the object is over the limit of {limit} bytes", 413)
                    fh.write(chunk)
        finally:
            body.close()
    return out, None


def dataset_import(*, owner, uri: str, fmt: str | None = None, label_column: str = "label") -> Dataset:
    """A dataset from a path the API can read (under the import roots) or an s3:// URI
    (under TENSORFLEET_DATASET_IMPORT_S3). Imported once per owner and content: the same
    bytes give back the same dataset."""
    with tempfile.TemporaryDirectory(prefix="tf-import-") as tmp:
        workdir = Path(tmp)
        path, detected = _import_s3(uri, workdir) if uri.startswith("s3://") else _import_local(uri, workdir)
        fmt = fmt or detected or guess_format(path.name, path)
        sha = sha256_of_file(path)
        stem = os.path.basename(uri.rstrip("/"))[:IMPORT_NAME_CHARS] or "dataset"  # the name column holds 200
        name = f"{stem}-{sha[:8]}"
        mine = Dataset.objects.filter(owner=owner)  # image folders are stored decoded: found by name and source
        existing = mine.filter(sha256=sha).first() or mine.filter(name=name, source=uri[:1000]).first()
        if existing is not None:
            return existing
        return dataset_create(owner=owner, name=name, path=path, fmt=fmt, label_column=label_column, source=uri)


def dataset_by_name(owner, value: str) -> Dataset | None:
    """One of ``owner``'s datasets by name: ``name`` is its newest version, ``name@3``
    version 3; None when there is no such name. A version that does not exist is a
    DatasetError saying which versions do."""
    name, version = dataset_reference(value)
    named = Dataset.objects.filter(owner=owner, name=name)
    if version is None:
        return named.order_by("-version").first()
    found = named.filter(version=version).first()
    if found is None and named.exists():
        versions = sorted(named.values_list("version", flat=True))
        raise DatasetError("dataset", f"{name!r} has no version {version}; it has {', '.join(map(str, versions))}")
    return found


def dataset_delete(*, dataset: Dataset) -> None:
    """Delete the record, and the object when no other record shares its content."""
    with transaction.atomic():
        # jobs.models.JobQuerySet.active, through the relation: no import of the jobs app.
        if dataset.jobs.active().exists() or dataset.validated_jobs.active().exists():
            raise DatasetInUse(f"dataset {dataset.name!r} is used by a queued or running job")
        key, sha = dataset.file.name, dataset.sha256
        dataset.delete()
        if not Dataset.objects.filter(sha256=sha).exists():
            transaction.on_commit(lambda: datasets_storage().delete(key))
