"""Dataset file formats: CSV with a label column, NPZ with X and y, MNIST's IDX files.

``inspect_file`` checks a file and reads its shape without keeping the data (the
API calls it on every upload); ``load_file`` returns the arrays (workers call it
once per process). numpy only, and ``allow_pickle=False``: user bytes are never
unpickled.
"""

from __future__ import annotations

import csv
import gzip
import io
import struct
import zipfile
from array import array
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMATS = ("csv", "npz", "idx")
IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MAX_CLASSES = 10_000


class DatasetFormatError(ValueError):
    """The file is not a valid dataset of its format; the message says why."""


@dataclass(frozen=True)
class DatasetInfo:
    num_samples: int
    input_shape: tuple[int, ...]
    num_classes: int


def guess_format(filename: str) -> str | None:
    name = filename.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".zip") or "idx" in name:
        return "idx"
    return None


def _check_labels(labels: np.ndarray) -> int:
    if labels.size == 0:
        raise DatasetFormatError("the dataset has no samples")
    if labels.min() < 0:
        raise DatasetFormatError("labels must be integers from 0 upwards")
    classes = int(labels.max()) + 1
    if classes < 2:
        raise DatasetFormatError("a classification dataset needs at least two classes")
    if classes > MAX_CLASSES:
        raise DatasetFormatError(f"labels go up to {classes - 1}; at most {MAX_CLASSES} classes are supported")
    return classes


# --- CSV ---------------------------------------------------------------------------


def _csv_rows(path: Path, label_column: str):
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8-sig", errors="strict") as fh:
        try:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None or not any(cell.strip() for cell in header):
                raise DatasetFormatError("the file is empty")
            header = [h.strip() for h in header]
            if label_column not in header:
                raise DatasetFormatError(f"no column named {label_column!r} (columns: {', '.join(header[:20])})")
            if len(header) < 2:
                raise DatasetFormatError("a CSV dataset needs at least one feature column besides the label")
            li = header.index(label_column)
            for line, row in enumerate(reader, start=2):
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(header):
                    raise DatasetFormatError(f"line {line}: {len(row)} fields, the header has {len(header)}")
                raw_label = row[li].strip()
                try:
                    label_value = float(raw_label)
                except ValueError:
                    raise DatasetFormatError(f"line {line}: label {raw_label!r} is not an integer") from None
                if not label_value.is_integer():
                    raise DatasetFormatError(f"line {line}: label {raw_label!r} is not an integer")
                features = []
                for i, cell in enumerate(row):
                    if i == li:
                        continue
                    try:
                        features.append(float(cell))
                    except ValueError:
                        raise DatasetFormatError(
                            f"line {line}: column {header[i]!r} value {cell.strip()!r} is not a number"
                        ) from None
                yield features, int(label_value)
        except UnicodeDecodeError:
            raise DatasetFormatError("the file is not UTF-8 text") from None
        except csv.Error as exc:
            raise DatasetFormatError(f"malformed CSV: {exc}") from None


def _csv(path: Path, label_column: str, keep: bool):
    xs, ys = array("f"), array("q")
    n, width = 0, None
    for features, label in _csv_rows(path, label_column):
        width = len(features)
        n += 1
        ys.append(label)
        if keep:
            xs.extend(features)
    if n == 0:
        raise DatasetFormatError("the file has a header but no rows")
    y = np.frombuffer(ys, dtype=np.int64)
    classes = _check_labels(y)
    x = np.frombuffer(xs, dtype=np.float32).reshape(n, width) if keep else None
    return DatasetInfo(n, (width,), classes), x, y


# --- NPZ ---------------------------------------------------------------------------


def _npz(path: Path, keep: bool):
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"X", "y"} - set(archive.files)
            if missing:
                raise DatasetFormatError(f"the NPZ file needs arrays X and y; missing {', '.join(sorted(missing))}")
            x, y = archive["X"], archive["y"]
    except DatasetFormatError:
        raise
    except ValueError as exc:  # object arrays need pickle, which is refused
        raise DatasetFormatError(f"cannot read the NPZ file: {exc}") from None
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetFormatError(f"not an NPZ file: {exc}") from None
    if x.ndim < 2:
        raise DatasetFormatError(f"X must have one row per sample (2 or more dimensions), got shape {list(x.shape)}")
    if y.ndim != 1:
        raise DatasetFormatError(f"y must be one label per sample, got shape {list(y.shape)}")
    if len(x) != len(y):
        raise DatasetFormatError(f"X has {len(x)} rows but y has {len(y)} labels")
    if x.dtype.kind not in "fiub":
        raise DatasetFormatError(f"X must be numeric, got {x.dtype}")
    if y.dtype.kind in "f":
        if not np.all(np.mod(y, 1) == 0):
            raise DatasetFormatError("y must hold integer class labels")
    elif y.dtype.kind not in "iub":
        raise DatasetFormatError(f"y must hold integer class labels, got {y.dtype}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DatasetFormatError("X holds NaN or infinite values")
    y = y.astype(np.int64)
    classes = _check_labels(y)
    shape = tuple(int(d) for d in x.shape[1:])
    if len(shape) == 2:  # (n, H, W) images: one channel
        shape = (1, *shape)
        x = x.reshape(len(x), *shape)
    return DatasetInfo(len(x), shape, classes), (x.astype(np.float32) if keep else None), y


# --- IDX (MNIST) -------------------------------------------------------------------


def _parse_idx(data: bytes, what: str) -> np.ndarray:
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DatasetFormatError(f"{what}: not an IDX file")
    dtype_code, ndim = data[2], data[3]
    if dtype_code != 0x08:
        raise DatasetFormatError(f"{what}: only unsigned-byte IDX data is supported")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DatasetFormatError(f"{what}: header says {list(dims)} but holds {body.size} values")
    return body.reshape(dims)


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


def _idx(path: Path, keep: bool):
    try:
        with zipfile.ZipFile(path) as zf:
            members = idx_members([n for n in zf.namelist() if not n.endswith("/")])
            arrays = {role: _parse_idx(zf.read(name), name) for role, name in members.items()}
    except zipfile.BadZipFile:
        raise DatasetFormatError("IDX datasets are uploaded as a zip of the standard files") from None
    images, labels = [arrays["train_images"]], [arrays["train_labels"]]
    if "test_images" in arrays and "test_labels" in arrays:
        images.append(arrays["test_images"])
        labels.append(arrays["test_labels"])
    for im, lb in zip(images, labels, strict=True):
        if im.ndim != 3:
            raise DatasetFormatError(f"image files must be 3-dimensional (n, rows, cols), got {list(im.shape)}")
        if lb.ndim != 1 or len(lb) != len(im):
            raise DatasetFormatError(f"{len(im)} images but {len(lb)} labels")
    if len({im.shape[1:] for im in images}) != 1:
        raise DatasetFormatError("train and test images differ in size")
    x = np.concatenate(images)
    y = np.concatenate(labels).astype(np.int64)
    classes = _check_labels(y)
    shape = (1, int(x.shape[1]), int(x.shape[2]))
    xf = (x.reshape(len(x), *shape).astype(np.float32) / 255.0) if keep else None
    return DatasetInfo(len(x), shape, classes), xf, y


def _read(path: Path, fmt: str, label_column: str, keep: bool):
    path = Path(path)
    if path.stat().st_size == 0:
        raise DatasetFormatError("the file is empty")
    if fmt == "csv":
        return _csv(path, label_column, keep)
    if fmt == "npz":
        return _npz(path, keep)
    if fmt == "idx":
        return _idx(path, keep)
    raise DatasetFormatError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def inspect_file(path: Path, fmt: str, label_column: str = "label") -> DatasetInfo:
    return _read(path, fmt, label_column, keep=False)[0]


def load_file(path: Path, fmt: str, label_column: str = "label") -> tuple[np.ndarray, np.ndarray]:
    _, x, y = _read(path, fmt, label_column, keep=True)
    return x, y


def zip_idx_folder(files: dict[str, bytes]) -> bytes:
    """Pack IDX files found under a prefix into a zip with fixed timestamps (same files, same bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, files[name])
    return buf.getvalue()
