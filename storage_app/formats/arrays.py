"""NPZ datasets: a zip of .npy arrays X and y, read without numpy.load: each header is
checked (shape, dtype, size against the budget) before its data is read, and nothing is
ever unpickled."""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from storage_app.formats.common import (
    CHUNK,
    Budget,
    DatasetFormatError,
    DatasetInfo,
    check_labels,
    decode_errors,
    open_member,
    open_zip,
    read_exact,
)


def _npy_header(fp, what: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(fp)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(fp)
    except ValueError as exc:
        raise DatasetFormatError(f"{what} is not a .npy array: {exc}") from None
    raise DatasetFormatError(f"{what}: .npy version {version[0]}.{version[1]} is not supported (1.0 and 2.0 are)")


def _npy_data(fp, shape, fortran: bool, dtype: np.dtype, what: str, keep: bool, check: Callable | None):
    """The array's data, read a megabyte at a time; ``check`` sees each chunk. The caller
    has claimed the declared size, so the array allocated here is within the budget."""
    count = math.prod(shape)
    out = np.empty(count, dtype) if keep else None
    step = max(1, CHUNK // max(1, dtype.itemsize))
    for start in range(0, count, step):
        k = min(step, count - start)
        data = read_exact(fp, k * dtype.itemsize)
        if len(data) < k * dtype.itemsize:
            raise DatasetFormatError(f"{what} ends early: its header declares shape {list(shape)}")
        chunk = np.frombuffer(data, dtype=dtype, count=k)
        if check is not None:
            check(chunk)
        if out is not None:
            out[start : start + k] = chunk
    if fp.read(1):
        raise DatasetFormatError(f"{what} holds more data than its header's shape {list(shape)}")
    if out is None:
        return None
    return out.reshape(shape[::-1]).transpose() if fortran else out.reshape(shape)


def _x_finite(chunk: np.ndarray) -> None:
    if chunk.dtype.kind == "f":
        with np.errstate(over="ignore"):
            if not np.isfinite(chunk.astype(np.float32)).all():
                raise DatasetFormatError("X holds NaN or infinite values (or values beyond float32's range)")


def read_npz(path: Path, keep: bool, budget: Budget):
    with (
        open_zip(path, "not an NPZ file (NPZ files are zips of .npy arrays, as numpy.savez writes)") as zf,
        ExitStack() as members_open,
    ):
        members = {info.filename: info for info in zf.infolist()}
        maybe = {key: members.get(f"{key}.npy") or members.get(key) for key in ("X", "y")}
        missing = sorted(k for k, v in maybe.items() if v is None)
        if missing:
            raise DatasetFormatError(f"the NPZ file needs arrays X and y; missing {', '.join(missing)}")
        found: dict[str, zipfile.ZipInfo] = {k: v for k, v in maybe.items() if v is not None}
        streams, heads = {}, {}
        for key, member in found.items():
            streams[key] = members_open.enter_context(open_member(zf, member, budget))
            with decode_errors(member.filename):
                heads[key] = _npy_header(streams[key], member.filename)
        (x_shape, x_fortran, x_dtype), (y_shape, y_fortran, y_dtype) = heads["X"], heads["y"]
        # Everything the headers say is checked before a byte of data is read.
        for key, dtype in (("X", x_dtype), ("y", y_dtype)):
            if dtype.hasobject:
                raise DatasetFormatError(f"cannot read the NPZ file: {key} holds Python objects, never unpickled")
        if len(x_shape) < 2:
            raise DatasetFormatError(
                f"X must have one row per sample (2 or more dimensions), got shape {list(x_shape)}"
            )
        if len(y_shape) != 1:
            raise DatasetFormatError(f"y must be one label per sample, got shape {list(y_shape)}")
        if x_shape[0] != y_shape[0]:
            raise DatasetFormatError(f"X has {x_shape[0]} rows but y has {y_shape[0]} labels")
        if x_dtype.kind not in "fiub":
            raise DatasetFormatError(f"X must be numeric, got {x_dtype}")
        if y_dtype.kind not in "fiub":
            raise DatasetFormatError(f"y must hold integer class labels, got {y_dtype}")
        if 0 in x_shape[1:]:
            raise DatasetFormatError(f"X has no features: shape {list(x_shape)}")
        budget.claim(math.prod(y_shape) * y_dtype.itemsize, found["y"].filename, declared=True)
        budget.claim(math.prod(x_shape) * x_dtype.itemsize, found["X"].filename, declared=True)
        with decode_errors(found["y"].filename):
            y = _npy_data(streams["y"], y_shape, y_fortran, y_dtype, "y", keep=True, check=None)
        if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
            raise DatasetFormatError("y must hold integer class labels")
        classes = check_labels(y)  # before the cast: a label of 1e19 does not wrap
        y = y.astype(np.int64)
        with decode_errors(found["X"].filename):
            x = _npy_data(streams["X"], x_shape, x_fortran, x_dtype, "X", keep=keep, check=_x_finite)
    shape = tuple(int(d) for d in x_shape[1:])
    if len(shape) == 2:  # (n, H, W) images: one channel
        shape = (1, *shape)
    info = DatasetInfo(len(y), shape, classes)
    if not keep:
        return info, None, y
    return info, x.reshape(len(x), *shape).astype(np.float32, copy=False), y
