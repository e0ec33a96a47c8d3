"""Dataset file formats: CSV or Parquet with a label column (integers or names), NPZ
with X and y, MNIST's IDX files, and image folders (a zip or tar of class_name/*.png).

``prepare_file`` takes an upload and says what to store: the file itself, or for image
folders the NPZ they decode to. ``inspect_file`` checks a stored file and reads its shape
without keeping the data; ``load_file`` returns the arrays (workers call it once per
process). User bytes are never unpickled.

Every file is read as a stream against a budget of decompressed bytes (the upload
limit counts only what was sent; a 1 MB zip of a gzipped IDX file once declared 1 GiB
of images and took an API worker to 2.3 GB). Sizes a file declares (an IDX header, a
``.npy`` header, a zip member's size) are checked against the budget before anything
is allocated or decompressed, and gzip and CSV text are counted as they are read, so
a file costs memory and time in proportion to the bytes it really holds, never more
than the budget. Any malformed file raises ``DatasetFormatError`` with the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from storage_app.formats.arrays import read_npz
from storage_app.formats.common import (
    MAX_CLASSES,
    MAX_ZIP_MEMBERS,
    Budget,
    DatasetFormatError,
    DatasetInfo,
    DatasetTooLarge,
    open_zip,
)
from storage_app.formats.idx import IDX_NAMES, idx_members, read_idx, zip_idx_folder
from storage_app.formats.images import MAX_IMAGE_MEMBERS, images_to_npz, parse_image_size
from storage_app.formats.tabular import read_csv

__all__ = [
    "FORMATS",
    "IDX_NAMES",
    "LABEL_COLUMN_FORMATS",
    "MAX_CLASSES",
    "MAX_ZIP_MEMBERS",
    "STORED_AS",
    "DatasetFormatError",
    "DatasetInfo",
    "DatasetTooLarge",
    "expansion_limit",
    "guess_format",
    "idx_members",
    "inspect_file",
    "load_file",
    "parse_image_size",
    "prepare_file",
    "zip_idx_folder",
]

FORMATS = ("csv", "npz", "idx", "images", "parquet")
LABEL_COLUMN_FORMATS = ("csv", "parquet")
# What each format is stored as: image folders as the NPZ they decode to.
STORED_AS = {"csv": "csv", "npz": "npz", "idx": "zip", "images": "npz", "parquet": "parquet"}
# Used when no limit is given and Django's settings are not configured.
DEFAULT_MAX_EXPANDED_BYTES = 1 << 30
DEFAULT_EXPANSION_RATIO = 100
# Files this small cost little whatever their ratio (64 MiB parses in about 2 s).
EXPANSION_FLOOR = 64 << 20


def guess_format(filename: str, path: Path | None = None) -> str | None:
    """The format a file name says; a ``.zip`` at ``path`` is IDX when it holds one of
    MNIST's file names and image folders otherwise."""
    name = filename.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith(".npz"):
        return "npz"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        return "images"
    if name.endswith(".zip"):
        return _zip_kind(path) if path is not None else "idx"
    if "idx" in name:
        return "idx"
    return None


def _zip_kind(path: Path) -> str:
    try:
        with open_zip(Path(path), "not a zip", MAX_IMAGE_MEMBERS) as zf:
            names = [n for n in zf.namelist() if not n.endswith("/")]
    except DatasetFormatError:
        return "idx"  # unreadable: the IDX reader says why, as it always has
    try:
        idx_members(names)
    except DatasetFormatError:
        return "images"
    return "idx"


def expansion_limit(file_size: int, max_bytes: int | None = None, ratio: int | None = None) -> tuple[int, str]:
    """How many bytes a file of ``file_size`` may decompress to, and the rule that set it.

    The least of ``max_bytes`` and ``ratio`` times the file's size, never under
    EXPANSION_FLOOR. Left out, both come from TENSORFLEET_MAX_DATASET_EXPANDED_BYTES and
    TENSORFLEET_MAX_DATASET_EXPANSION_RATIO when Django is configured: the API and the
    workers read files through this module, so both get the same bounds.
    """
    configured = _settings() if max_bytes is None or ratio is None else {}
    if max_bytes is None:
        max_bytes = configured.get("TENSORFLEET_MAX_DATASET_EXPANDED_BYTES", DEFAULT_MAX_EXPANDED_BYTES)
    if ratio is None:
        ratio = configured.get("TENSORFLEET_MAX_DATASET_EXPANSION_RATIO", DEFAULT_EXPANSION_RATIO)
    if ratio and max(EXPANSION_FLOOR, ratio * file_size) < max_bytes:
        rule = f"{ratio} times the file's {file_size} bytes, and never less than {EXPANSION_FLOOR} bytes"
        return max(EXPANSION_FLOOR, ratio * file_size), rule
    return max_bytes, "the limit on a dataset's decompressed size"


def _settings() -> dict:
    try:
        from django.conf import settings
    except ImportError:
        return {}
    if not settings.configured:
        return {}
    names = ("TENSORFLEET_MAX_DATASET_EXPANDED_BYTES", "TENSORFLEET_MAX_DATASET_EXPANSION_RATIO")
    return {name: int(getattr(settings, name)) for name in names if hasattr(settings, name)}


def _read(path: Path, fmt: str, label_column: str, keep: bool, limits: dict):
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise DatasetFormatError("the file is empty")
    budget = Budget(*expansion_limit(size, **limits))
    if fmt == "csv":
        return read_csv(path, label_column, keep, budget)
    if fmt == "npz":
        return read_npz(path, keep, budget)
    if fmt == "idx":
        return read_idx(path, keep, budget)
    if fmt == "images":  # stored as the NPZ its archive decoded to
        info, x, y = read_npz(path, keep, budget)
        if keep:
            x /= np.float32(255.0)
        return info, x, y
    if fmt == "parquet":
        from storage_app.formats.parquet import read_parquet  # pyarrow: loaded by the processes that read Parquet

        return read_parquet(path, label_column, keep, budget)
    raise DatasetFormatError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def inspect_file(path: Path, fmt: str, label_column: str = "label", **limits) -> DatasetInfo:
    """The file's shape and classes, read without keeping its data. ``limits``:
    ``max_bytes`` and ``ratio`` of ``expansion_limit`` (default: from settings)."""
    return _read(path, fmt, label_column, False, limits)[0]


def prepare_file(
    path: Path, fmt: str, label_column: str = "label", *, workdir: Path, image_size: tuple[int, int] | None = None
) -> tuple[Path, DatasetInfo]:
    """An upload checked: the file to store and what it holds. Image folders are decoded
    into an NPZ in ``workdir`` (``image_size``: (height, width), or the most common size);
    every other format is stored as uploaded."""
    if fmt != "images":
        return path, inspect_file(path, fmt, label_column)
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise DatasetFormatError("the file is empty")
    out = Path(workdir) / "images.npz"
    return out, images_to_npz(path, out, image_size, Budget(*expansion_limit(size)))


def load_file(path: Path, fmt: str, label_column: str = "label", **limits) -> tuple[np.ndarray, np.ndarray]:
    """Features as float32 (images scaled to [0, 1]) and labels as int64, under the same limits."""
    _, x, y = _read(path, fmt, label_column, True, limits)
    return x, y
