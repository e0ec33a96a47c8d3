"""MNIST's IDX files, uploaded as a zip of the standard files (raw or gzipped)."""

from __future__ import annotations

import io
import math
import struct
import zipfile
from pathlib import Path

import numpy as np

from storage_app.formats.common import (
    CHUNK,
    Budget,
    DatasetFormatError,
    DatasetInfo,
    check_labels,
    decode_errors,
    maybe_gunzip,
    open_member,
    open_zip,
    read_exact,
)

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _idx_array(
    fp, what: str, ndim_wanted: int, budget: Budget, keep: bool
) -> tuple[tuple[int, ...], np.ndarray | None]:
    """An IDX file's dimensions and (with ``keep``) its bytes. The dimensions are checked
    against the budget before a byte of data is read or a buffer allocated."""
    fp = maybe_gunzip(fp)
    head = read_exact(fp, 4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise DatasetFormatError(f"{what}: not an IDX file")
    dtype_code, ndim = head[2], head[3]
    if dtype_code != 0x08:
        raise DatasetFormatError(f"{what}: only unsigned-byte IDX data is supported")
    raw_dims = read_exact(fp, 4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DatasetFormatError(f"{what}: the header declares {ndim} dimensions but ends after {len(raw_dims) // 4}")
    dims = struct.unpack(f">{ndim}I", raw_dims)
    if ndim != ndim_wanted:
        kind = (
            "image files must be 3-dimensional (n, rows, cols)"
            if ndim_wanted == 3
            else "label files must be 1-dimensional"
        )
        raise DatasetFormatError(f"{what}: {kind}, got {list(dims)}")
    count = math.prod(dims)  # Python integers: a product of 32-bit dimensions cannot wrap
    budget.claim(count, what, declared=True)
    if keep:
        body = np.empty(count, np.uint8)
        got = 0
        view = memoryview(body)  # type: ignore[arg-type]  # numpy arrays are buffers
        while got < count:
            n = fp.readinto(view[got : got + CHUNK])
            if not n:
                break
            got += n
    else:
        got = 0
        while got < count:
            chunk = fp.read(min(CHUNK, count - got))
            if not chunk:
                break
            got += len(chunk)
        body = None
    if got < count:
        raise DatasetFormatError(f"{what}: header says {list(dims)} but holds {got} values")
    if fp.read(1):
        raise DatasetFormatError(f"{what}: header says {list(dims)} but holds more values")
    return dims, (body.reshape(dims) if body is not None else None)


def idx_members(names: list[str]) -> dict[str, str]:
    """Map the standard MNIST roles to the given file names (raw or .gz, any folder)."""
    found = {}
    for role, stem in IDX_NAMES.items():
        for name in names:
            base = name.rsplit("/", 1)[-1]
            if base in (stem, stem + ".gz") or base.replace(".", "-", 1) in (stem, stem + ".gz"):
                found[role] = name
    if "train_images" not in found or "train_labels" not in found:
        raise DatasetFormatError(
            "IDX datasets need at least train-images-idx3-ubyte and train-labels-idx1-ubyte (raw or .gz)"
        )
    return found


def read_idx(path: Path, keep: bool, budget: Budget):
    with open_zip(path, "IDX datasets are uploaded as a zip of the standard files") as zf:
        members = idx_members([n for n in zf.namelist() if not n.endswith("/")])
        roles = ["train_images", "train_labels"]
        if "test_images" in members and "test_labels" in members:
            roles += ["test_images", "test_labels"]
        dims: dict = {}
        arrays: dict[str, np.ndarray | None] = {}
        for role in roles:
            name = members[role]
            is_images = role.endswith("images")
            with open_member(zf, zf.getinfo(name), budget) as fp, decode_errors(name):
                # labels are always kept: they are small, and the classes come from them
                dims[role], arrays[role] = _idx_array(fp, name, 3 if is_images else 1, budget, keep or not is_images)
    pairs = [("train_images", "train_labels"), ("test_images", "test_labels")][: len(roles) // 2]
    for im, lb in pairs:
        if dims[lb][0] != dims[im][0]:
            raise DatasetFormatError(f"{dims[im][0]} images but {dims[lb][0]} labels")
    if len({dims[im][1:] for im, _ in pairs}) != 1:
        raise DatasetFormatError("train and test images differ in size")
    rows, cols = dims["train_images"][1:]
    if rows == 0 or cols == 0:
        raise DatasetFormatError(f"images of {rows}x{cols} pixels hold nothing")
    y = np.concatenate([a for _, lb in pairs if (a := arrays[lb]) is not None]).astype(np.int64)
    classes = check_labels(y)
    shape = (1, int(rows), int(cols))
    info = DatasetInfo(len(y), shape, classes)
    if not keep:
        return info, None, y
    xf = np.empty((len(y), *shape), np.float32)
    start = 0
    for im, _ in pairs:
        part = arrays.pop(im)  # each uint8 part is freed once copied
        assert part is not None  # kept: keep is true here
        xf[start : start + len(part), 0] = part
        start += len(part)
    xf /= np.float32(255.0)
    return info, xf, y


def zip_idx_folder(files: dict[str, bytes]) -> bytes:
    """Pack IDX files found under a prefix into a zip with fixed timestamps (same files, same bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, files[name])
    return buf.getvalue()
