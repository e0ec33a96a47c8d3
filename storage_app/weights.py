"""Uploaded weights: a safetensors file a job may start from (``init_from``).

The API process never imports torch, so the file is checked here by reading its
header as the format defines it (an 8-byte little-endian length, then that many bytes
of JSON naming each tensor's dtype, shape and byte range) and nothing is ever
unpickled. A file is stored once per content under its sha256, recorded per owner,
and kept while a queued or running job starts from it.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction

from storage_app.models import Weights
from storage_app.storages import datasets_storage
from storage_app.usage import stored_bytes
from tensorfleet_site.quotas import limits as quotas

# Bytes per element of each dtype safetensors writes (its Rust ``Dtype``), sub-byte ones left out.
DTYPE_BYTES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
FLOAT_DTYPES = frozenset({"F8_E4M3", "F8_E5M2", "F16", "BF16", "F32", "F64"})
# A header names every tensor in ~100 bytes: a ResNet-152's is ~100 KB, a large language
# model's a few MB. safetensors itself allows 100 MB; the API reads this much at most.
MAX_HEADER_BYTES = 8 * 1024 * 1024
MAX_DIMS = 32
METADATA_KEY = "__metadata__"
NAME_MAX_CHARS = 200  # Weights.name's max_length


class WeightsFormatError(ValueError):
    """The file is not a safetensors file this platform reads; the message says why."""


class WeightsError(ValueError):
    """A weights request that cannot be honoured; ``field`` names the input at fault."""

    def __init__(self, field: str, message: str, status: int = 400):
        super().__init__(message)
        self.field, self.status = field, status


class WeightsInUse(Exception):
    pass


@dataclass(frozen=True)
class SafetensorsHeader:
    tensors: dict[str, tuple[str, list[int]]]  # name -> (dtype, shape)
    metadata: dict[str, str]


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        duplicate = next(k for k in keys if keys.count(k) > 1)
        raise WeightsFormatError(f"the header names {duplicate!r} twice")
    return dict(pairs)


def _no_constant(name: str):
    raise WeightsFormatError(f"the header holds {name}, which is not JSON")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tensor_entry(name: str, entry) -> tuple[str, list[int], int, int]:
    """(dtype, shape, begin, end) of one tensor's header entry, checked."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise WeightsFormatError(f"tensor {name!r}: an entry holds exactly 'dtype', 'shape' and 'data_offsets'")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in DTYPE_BYTES:
        known = ", ".join(DTYPE_BYTES)
        raise WeightsFormatError(f"tensor {name!r}: unknown dtype {str(dtype)[:40]!r} (known: {known})")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(_is_int(d) and d >= 0 for d in shape):
        raise WeightsFormatError(f"tensor {name!r}: the shape is a list of at most {MAX_DIMS} whole numbers >= 0")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
        raise WeightsFormatError(f"tensor {name!r}: data_offsets is [begin, end]")
    begin, end = offsets
    if not 0 <= begin <= end:
        raise WeightsFormatError(f"tensor {name!r}: data_offsets [{begin}, {end}] is not a byte range")
    expected = math.prod(shape) * DTYPE_BYTES[dtype]
    if end - begin != expected:
        raise WeightsFormatError(
            f"tensor {name!r}: {dtype} {shape} takes {expected} bytes, its data_offsets give {end - begin}"
        )
    return dtype, shape, begin, end


def _metadata(value) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise WeightsFormatError(f"{METADATA_KEY} maps names to strings")
    return value


def parse_safetensors_header(raw: bytes, data_bytes: int) -> SafetensorsHeader:
    """Check a header (the JSON after the length) against a data section of
    ``data_bytes``: known dtypes, sizes that match the shapes, and byte ranges that
    cover the data exactly, without a gap, an overlap or a byte left over."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise WeightsFormatError("the header is not UTF-8 text") from None
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except WeightsFormatError:
        raise
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise WeightsFormatError(f"the header is not valid JSON ({reason})") from None
    if not isinstance(header, dict):
        raise WeightsFormatError("the header is not a JSON object")
    metadata = _metadata(header.pop(METADATA_KEY, None))
    tensors, ranges = {}, []
    for name, entry in header.items():
        dtype, shape, begin, end = _tensor_entry(name, entry)
        tensors[name] = (dtype, shape)
        ranges.append((begin, end, name))
    position = 0
    for begin, end, name in sorted(ranges):
        if begin < position:
            raise WeightsFormatError(f"tensor {name!r} overlaps the tensor before it (bytes {begin} to {end})")
        if begin > position:
            raise WeightsFormatError(f"bytes {position} to {begin} belong to no tensor (before {name!r})")
        position = end
    if position != data_bytes:
        raise WeightsFormatError(f"the tensors take {position} bytes but the file holds {data_bytes} after the header")
    return SafetensorsHeader(tensors=tensors, metadata=metadata)


def read_safetensors_header(path: Path) -> SafetensorsHeader:
    """The checked header of the safetensors file at ``path``; reads the header only."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        prefix = fh.read(8)
        if len(prefix) < 8:
            raise WeightsFormatError(f"not a safetensors file: {size} bytes, too short for its header's length")
        (length,) = struct.unpack("<Q", prefix)
        if length < 2:
            raise WeightsFormatError("not a safetensors file: its header is empty")
        if length > MAX_HEADER_BYTES:
            raise WeightsFormatError(f"the header says it is {length} bytes; the limit is {MAX_HEADER_BYTES}")
        if length > size - 8:
            raise WeightsFormatError(f"the header says it is {length} bytes but the file has {size - 8} after 8")
        raw = fh.read(length)
    return parse_safetensors_header(raw, size - 8 - length)


def weights_key(sha256: str) -> str:
    return f"weights/{sha256[:2]}/{sha256}.safetensors"


def weights_name_error(name: str) -> str | None:
    """Why ``name`` cannot name weights, or None. A job names its weights by id or name
    (``init_from``), so a name cannot look like an id."""
    if not name:
        return "Weights need a name."
    if name != name.strip():
        return "A weights name cannot start or end with spaces."
    if len(name) > NAME_MAX_CHARS:
        return f"A weights name has at most {NAME_MAX_CHARS} characters; this one has {len(name)}."
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        return "A weights name cannot hold control characters."
    try:
        uuid.UUID(name)
    except ValueError:
        return None
    return "A weights name cannot look like an id."


def weights_name_from_file(filename: str) -> str:
    return Path(filename).name.split(".")[0].strip()[:NAME_MAX_CHARS].strip() or "weights"


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checked(*, owner, name: str, path: Path) -> tuple[int, SafetensorsHeader]:
    problem = weights_name_error(name)
    if problem:
        raise WeightsError("name", problem)
    size = path.stat().st_size
    limit = settings.TENSORFLEET_MAX_DATASET_BYTES
    if size > limit:
        raise WeightsError("file", f"the file is {size} bytes; the limit is {limit}", 413)
    if Weights.objects.filter(owner=owner, name=name).exists():
        raise WeightsError("name", f"you already have weights named {name!r}")
    try:
        header = read_safetensors_header(path)
    except WeightsFormatError as exc:
        raise WeightsError("file", str(exc)) from None
    if not header.tensors:
        raise WeightsError("file", "the file holds no tensors")
    quotas.check(owner, "stored_bytes", used=stored_bytes(owner), asked=size, field="file")
    return size, header


def weights_create(*, owner, name: str, path: Path) -> Weights:
    """Check the safetensors file at ``path``, store it (once per content) and record it
    for ``owner``. Nothing is left in storage or the database when a check fails."""
    size, header = _checked(owner=owner, name=name, path=path)
    sha = _sha256_of(path)
    key = weights_key(sha)
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
            return Weights.objects.create(
                owner=owner,
                name=name,
                file=key,
                sha256=sha,
                size=size,
                tensors={n: [dtype, shape] for n, (dtype, shape) in header.tensors.items()},
                metadata=header.metadata,
            )
    except Exception as exc:
        if stored_here and not Weights.objects.filter(sha256=sha).exists():
            storage.delete(key)
        if isinstance(exc, IntegrityError):
            raise WeightsError("name", f"you already have weights named {name!r}") from None
        raise


def weights_in_use(weights: Weights):
    """The owner's queued or running jobs that start from ``weights`` (through the
    owner's relation: ``Job.init_from`` records ``{"weights": id, ...}``)."""
    return weights.owner.jobs.active().filter(init_from__weights=str(weights.id))


def weights_delete(*, weights: Weights) -> None:
    """Delete the record, and the object when no other record shares its content.

    The row is locked first: ``jobs.init_from`` locks it too while a job that starts
    from it is created, so a delete and a submission racing cannot both succeed."""
    with transaction.atomic():
        locked = Weights.objects.select_for_update().filter(id=weights.id).first()
        if locked is None:
            return
        if weights_in_use(locked).exists():
            raise WeightsInUse(f"weights {locked.name!r} are what a queued or running job starts from")
        key, sha = locked.file.name, locked.sha256
        locked.delete()
        if not Weights.objects.filter(sha256=sha).exists():
            transaction.on_commit(lambda: datasets_storage().delete(key))
