"""Dataset file formats: CSV with a label column, NPZ with X and y, MNIST's IDX files.

``inspect_file`` checks a file and reads its shape without keeping the data (the
API calls it on every upload); ``load_file`` returns the arrays (workers call it
once per process). numpy only: user bytes are never unpickled.

Every file is read as a stream against a budget of decompressed bytes (the upload
limit counts only what was sent; a 1 MB zip of a gzipped IDX file once declared 1 GiB
of images and took an API worker to 2.3 GB). Sizes a file declares (an IDX header, a
``.npy`` header, a zip member's size) are checked against the budget before anything
is allocated or decompressed, and gzip and CSV text are counted as they are read, so
a file costs memory and time in proportion to the bytes it really holds, never more
than the budget. Any malformed file raises ``DatasetFormatError`` with the reason.
"""

from __future__ import annotations

import csv
import gzip
import io
import lzma
import math
import struct
import warnings
import zipfile
import zlib
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
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
# Used when no limit is given and Django's settings are not configured.
DEFAULT_MAX_EXPANDED_BYTES = 1 << 30
DEFAULT_EXPANSION_RATIO = 100
# Files this small cost little whatever their ratio (64 MiB parses in about 2 s).
EXPANSION_FLOOR = 64 << 20
# Opening a zip reads its whole central directory, about 500 bytes of memory per entry:
# a 512 MB upload of empty entries would take 3 GB before a member is read. An IDX zip
# needs four members and an NPZ two.
MAX_ZIP_MEMBERS = 10_000
ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
CHUNK = 1 << 20
CSV_BLOCK_CHARS = 1 << 18
FLOAT32_MAX = float(np.finfo(np.float32).max)


class DatasetFormatError(ValueError):
    """The file is not a valid dataset of its format; the message says why."""


class DatasetTooLarge(DatasetFormatError):
    """The file declares or decompresses to more than the limits allow (the API answers 413)."""


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


class _Budget:
    """Decompressed bytes a file may still take, across all its members."""

    def __init__(self, limit: int, rule: str = "the limit"):
        self.limit, self.rule, self.used = limit, rule, 0

    def claim(self, n: int, what: str, declared: bool = False) -> None:
        self.used += n
        if self.used > self.limit:
            verb = "declares" if declared else "expands to"
            raise DatasetTooLarge(f"{what} {verb} more than {self.limit} bytes decompressed ({self.rule})")

    def check_declared(self, n: int, what: str) -> None:
        """Refuse a size the file states ahead of its data, without claiming it."""
        if self.used + n > self.limit:
            raise DatasetTooLarge(f"{what} declares {n} bytes decompressed; the limit is {self.limit} ({self.rule})")


class _Counted(io.RawIOBase):
    """A binary stream that claims every byte read from it against the budget."""

    def __init__(self, raw, budget: _Budget, what: str):
        self._raw, self._budget, self._what = raw, budget, what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(len(buffer))
        self._budget.claim(len(data), self._what)
        buffer[: len(data)] = data
        return len(data)


def _read_exact(fp, n: int) -> bytes:
    """Up to ``n`` bytes: fewer only at the end of the stream."""
    parts, left = [], n
    while left > 0:
        data = fp.read(min(left, CHUNK))
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


def _maybe_gunzip(fp):
    """The stream, decompressed when it starts with gzip's magic bytes (whatever its name says)."""
    head = fp.peek(2)[:2]
    return gzip.GzipFile(fileobj=fp, mode="rb") if head == b"\x1f\x8b" else fp


@contextmanager
def _decode_errors(what: str):
    """Broken compressed data, in any of its forms, is the file's fault: a 400 with the reason."""
    try:
        yield
    except DatasetFormatError:
        raise
    except (gzip.BadGzipFile, zlib.error, EOFError, lzma.LZMAError) as exc:
        raise DatasetFormatError(f"{what}: corrupt or truncated compressed data ({exc})") from None
    except zipfile.BadZipFile as exc:
        raise DatasetFormatError(f"{what}: broken zip file ({exc})") from None
    except OSError as exc:  # bz2's and gzip's other complaints about their input
        raise DatasetFormatError(f"{what}: cannot decompress ({exc})") from None


def _check_labels(labels: np.ndarray) -> int:
    """The number of classes; labels in any numeric dtype, checked before any cast."""
    if labels.size == 0:
        raise DatasetFormatError("the dataset has no samples")
    lo, hi = labels.min(), labels.max()
    if lo < 0:
        raise DatasetFormatError("labels must be integers from 0 upwards")
    if hi >= MAX_CLASSES:
        raise DatasetFormatError(f"labels go up to {hi}; at most {MAX_CLASSES} classes are supported")
    classes = int(hi) + 1
    if classes < 2:
        raise DatasetFormatError("a classification dataset needs at least two classes")
    return classes


# --- zip -------------------------------------------------------------------------------


def _open_zip(path: Path, refusal: str) -> zipfile.ZipFile:
    """The zip at ``path``, its entry count checked before its central directory is read."""
    with _decode_errors(path.name):
        with open(path, "rb") as fh:
            # zipfile's own reader of the end record (zip64 included): private, but in every
            # CPython since 2.x, and test_upload_hardening fails if it goes.
            end = zipfile._EndRecData(fh)
        if end is None:
            raise DatasetFormatError(refusal)
        if end[zipfile._ECD_ENTRIES_TOTAL] > MAX_ZIP_MEMBERS:
            raise DatasetTooLarge(
                f"the zip holds {end[zipfile._ECD_ENTRIES_TOTAL]} entries; at most {MAX_ZIP_MEMBERS} are read"
            )
        try:
            return zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise DatasetFormatError(refusal) from None


def _open_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget):
    """A member's stream, refused when it cannot be read or says it is over the budget."""
    if info.flag_bits & 0x1:
        raise DatasetFormatError(f"{info.filename} is encrypted; upload the zip without a password")
    if info.compress_type not in ZIP_METHODS:
        kind = " (WinZip AES encryption)" if info.compress_type == 99 else ""
        raise DatasetFormatError(
            f"{info.filename} uses zip compression method {info.compress_type}{kind}; "
            "only stored, deflate, bzip2 and lzma members are read"
        )
    # zipfile never yields more than the size the directory states, so this bounds the member.
    budget.check_declared(info.file_size, info.filename)
    with _decode_errors(info.filename):
        return zf.open(info)


# --- CSV ---------------------------------------------------------------------------


@contextmanager
def _csv_text(path: Path, budget: _Budget):
    """The file as UTF-8 text, gunzipped when it is gzip, every byte counted."""
    with open(path, "rb") as raw, _decode_errors(path.name):
        source = _maybe_gunzip(raw)
        counted = io.BufferedReader(_Counted(source, budget, path.name), CHUNK)
        with io.TextIOWrapper(counted, encoding="utf-8-sig", errors="strict", newline="") as text:
            try:
                yield text
            except UnicodeDecodeError:
                raise DatasetFormatError("the file is not UTF-8 text") from None
            except csv.Error as exc:
                raise DatasetFormatError(f"malformed CSV: {exc}") from None


def _csv_block_slow(lines: list[str], first_line: int, li: int, header: list[str]):
    """Parse lines one by one with the csv module: the reference for what is accepted,
    and the one that names the line and column at fault."""
    xs, ys = [], []
    for line, row in enumerate(csv.reader(lines), start=first_line):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(header):
            raise DatasetFormatError(f"line {line}: {len(row)} fields, the header has {len(header)}")
        raw_label = row[li].strip()
        try:
            label = float(raw_label)
        except ValueError:
            raise DatasetFormatError(f"line {line}: label {raw_label!r} is not an integer") from None
        if not label.is_integer():
            raise DatasetFormatError(f"line {line}: label {raw_label!r} is not an integer")
        if label < 0:
            raise DatasetFormatError(f"line {line}: label {raw_label!r}; labels must be integers from 0 upwards")
        if label >= MAX_CLASSES:
            raise DatasetFormatError(f"line {line}: label {raw_label!r}; at most {MAX_CLASSES} classes are supported")
        features = []
        for i, cell in enumerate(row):
            if i == li:
                continue
            try:
                value = float(cell)
            except ValueError:
                raise DatasetFormatError(
                    f"line {line}: column {header[i]!r} value {cell.strip()!r} is not a number"
                ) from None
            if not (math.isfinite(value) and abs(value) <= FLOAT32_MAX):
                raise DatasetFormatError(
                    f"line {line}: column {header[i]!r} value {cell.strip()!r} is not a finite number "
                    f"(NaN and infinite values, and values beyond float32's range, are refused)"
                )
            features.append(value)
        xs.append(features)
        ys.append(label)
    x = np.array(xs, dtype=np.float32).reshape(len(xs), len(header) - 1)
    return x, np.array(ys, dtype=np.int64)


def _csv_block(text: str, first_line: int, li: int, header: list[str]):
    """Features (float32) and labels of a block of whole lines. numpy's C parser reads a
    clean block four to eight times faster than the csv module; a block it refuses, or
    whose values fail a check, is parsed again by ``_csv_block_slow``, which decides and
    gives the reason, so the fast path changes the speed, never what is accepted."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # loadtxt warns about blocks of blank lines
            values = np.loadtxt(
                io.StringIO(text, newline=""), delimiter=",", dtype=np.float64, comments=None, quotechar='"', ndmin=2
            )
    except ValueError:
        values = None
    if values is not None and (values.shape[1] == len(header) or values.shape[0] == 0):
        if values.shape[0] == 0:
            return np.empty((0, len(header) - 1), np.float32), np.empty(0, np.int64)
        labels = values[:, li]
        with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is caught below
            x = np.delete(values, li, axis=1).astype(np.float32)
            labels_ok = bool(np.all((labels >= 0) & (labels < MAX_CLASSES) & (labels == np.floor(labels))))
        if labels_ok and np.isfinite(x).all():
            return x, labels.astype(np.int64)
    with np.errstate(over="ignore"):
        return _csv_block_slow(io.StringIO(text, newline="").readlines(), first_line, li, header)


def _count_lines(text: str) -> int:
    """Lines as the csv module counts them: ended by \\n, \\r\\n or \\r, the last one perhaps not."""
    ends = text.count("\n") + text.count("\r") - text.count("\r\n")
    return ends + (1 if text and text[-1] not in "\r\n" else 0)


def _csv(path: Path, label_column: str, keep: bool, budget: _Budget):
    with _csv_text(path, budget) as fh:
        first = fh.readline()
        header = next(csv.reader([first]), [])
        if not any(cell.strip() for cell in header):
            raise DatasetFormatError("the file is empty")
        header = [h.strip() for h in header]
        if label_column not in header:
            raise DatasetFormatError(f"no column named {label_column!r} (columns: {', '.join(header[:20])})")
        if len(header) < 2:
            raise DatasetFormatError("a CSV dataset needs at least one feature column besides the label")
        li = header.index(label_column)
        xs, ys = [], []
        n, line, lo, hi = 0, 2, MAX_CLASSES, -1
        # Blocks of whole lines, a quarter megabyte and the rest of its last line at a time:
        # a block of four-byte rows takes about 10 MiB while it is parsed.
        while text := fh.read(CSV_BLOCK_CHARS) + fh.readline():
            x, y = _csv_block(text, line, li, header)
            line += _count_lines(text)
            if len(y):
                n += len(y)
                lo, hi = min(lo, int(y.min())), max(hi, int(y.max()))
                if keep:
                    xs.append(x)
                    ys.append(y.astype(np.uint16))  # labels are under MAX_CLASSES: a quarter of the memory
    if n == 0:
        raise DatasetFormatError("the file has a header but no rows")
    classes = _check_labels(np.array([lo, hi]))
    info = DatasetInfo(n, (len(header) - 1,), classes)
    if not keep:
        return info, None, None
    x = np.concatenate(xs)
    xs.clear()
    return info, x, np.concatenate(ys, dtype=np.int64)


# --- NPZ ---------------------------------------------------------------------------


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
        data = _read_exact(fp, k * dtype.itemsize)
        if len(data) < k * dtype.itemsize:
            raise DatasetFormatError(f"{what} ends early: its header declares shape {list(shape)}")
        chunk = np.frombuffer(data, dtype=dtype, count=k)
        if check is not None:
            check(chunk)
        if keep:
            out[start : start + k] = chunk
    if fp.read(1):
        raise DatasetFormatError(f"{what} holds more data than its header's shape {list(shape)}")
    if not keep:
        return None
    return out.reshape(shape[::-1]).transpose() if fortran else out.reshape(shape)


def _x_finite(chunk: np.ndarray) -> None:
    if chunk.dtype.kind == "f":
        with np.errstate(over="ignore"):
            if not np.isfinite(chunk.astype(np.float32)).all():
                raise DatasetFormatError("X holds NaN or infinite values (or values beyond float32's range)")


def _npz(path: Path, keep: bool, budget: _Budget):
    with (
        _open_zip(path, "not an NPZ file (NPZ files are zips of .npy arrays, as numpy.savez writes)") as zf,
        ExitStack() as members_open,
    ):
        members = {info.filename: info for info in zf.infolist()}
        found = {key: members.get(f"{key}.npy") or members.get(key) for key in ("X", "y")}
        missing = sorted(k for k, v in found.items() if v is None)
        if missing:
            raise DatasetFormatError(f"the NPZ file needs arrays X and y; missing {', '.join(missing)}")
        streams, heads = {}, {}
        for key, info in found.items():
            streams[key] = members_open.enter_context(_open_member(zf, info, budget))
            with _decode_errors(info.filename):
                heads[key] = _npy_header(streams[key], info.filename)
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
        with _decode_errors(found["y"].filename):
            y = _npy_data(streams["y"], y_shape, y_fortran, y_dtype, "y", keep=True, check=None)
        if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
            raise DatasetFormatError("y must hold integer class labels")
        classes = _check_labels(y)  # before the cast: a label of 1e19 does not wrap
        y = y.astype(np.int64)
        with _decode_errors(found["X"].filename):
            x = _npy_data(streams["X"], x_shape, x_fortran, x_dtype, "X", keep=keep, check=_x_finite)
    shape = tuple(int(d) for d in x_shape[1:])
    if len(shape) == 2:  # (n, H, W) images: one channel
        shape = (1, *shape)
    info = DatasetInfo(len(y), shape, classes)
    if not keep:
        return info, None, y
    return info, x.reshape(len(x), *shape).astype(np.float32, copy=False), y


# --- IDX (MNIST) -------------------------------------------------------------------


def _idx_array(
    fp, what: str, ndim_wanted: int, budget: _Budget, keep: bool
) -> tuple[tuple[int, ...], np.ndarray | None]:
    """An IDX file's dimensions and (with ``keep``) its bytes. The dimensions are checked
    against the budget before a byte of data is read or a buffer allocated."""
    fp = _maybe_gunzip(fp)
    head = _read_exact(fp, 4)
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise DatasetFormatError(f"{what}: not an IDX file")
    dtype_code, ndim = head[2], head[3]
    if dtype_code != 0x08:
        raise DatasetFormatError(f"{what}: only unsigned-byte IDX data is supported")
    raw_dims = _read_exact(fp, 4 * ndim)
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
        view = memoryview(body)
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
    return dims, (body.reshape(dims) if keep else None)


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


def _idx(path: Path, keep: bool, budget: _Budget):
    with _open_zip(path, "IDX datasets are uploaded as a zip of the standard files") as zf:
        members = idx_members([n for n in zf.namelist() if not n.endswith("/")])
        roles = ["train_images", "train_labels"]
        if "test_images" in members and "test_labels" in members:
            roles += ["test_images", "test_labels"]
        dims, arrays = {}, {}
        for role in roles:
            name = members[role]
            is_images = role.endswith("images")
            with _open_member(zf, zf.getinfo(name), budget) as fp, _decode_errors(name):
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
    y = np.concatenate([arrays[lb] for _, lb in pairs]).astype(np.int64)
    classes = _check_labels(y)
    shape = (1, int(rows), int(cols))
    info = DatasetInfo(len(y), shape, classes)
    if not keep:
        return info, None, y
    xf = np.empty((len(y), *shape), np.float32)
    start = 0
    for im, _ in pairs:
        part = arrays.pop(im)  # each uint8 part is freed once copied
        xf[start : start + len(part), 0] = part
        start += len(part)
    xf /= np.float32(255.0)
    return info, xf, y


def _read(path: Path, fmt: str, label_column: str, keep: bool, limits: dict):
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise DatasetFormatError("the file is empty")
    budget = _Budget(*expansion_limit(size, **limits))
    if fmt == "csv":
        return _csv(path, label_column, keep, budget)
    if fmt == "npz":
        return _npz(path, keep, budget)
    if fmt == "idx":
        return _idx(path, keep, budget)
    raise DatasetFormatError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")


def inspect_file(path: Path, fmt: str, label_column: str = "label", **limits) -> DatasetInfo:
    """The file's shape and classes, read without keeping its data. ``limits``:
    ``max_bytes`` and ``ratio`` of ``expansion_limit`` (default: from settings)."""
    return _read(path, fmt, label_column, False, limits)[0]


def load_file(path: Path, fmt: str, label_column: str = "label", **limits) -> tuple[np.ndarray, np.ndarray]:
    """Features as float32 (images scaled to [0, 1]) and labels as int64, under the same limits."""
    _, x, y = _read(path, fmt, label_column, True, limits)
    return x, y


def zip_idx_folder(files: dict[str, bytes]) -> bytes:
    """Pack IDX files found under a prefix into a zip with fixed timestamps (same files, same bytes)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            zf.writestr(info, files[name])
    return buf.getvalue()
