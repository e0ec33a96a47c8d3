"""CSV datasets: a header, one row per sample, one column of labels (integers or names)."""

from __future__ import annotations

import csv
import io
import math
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from storage_app.formats.common import (
    CHUNK,
    FLOAT32_MAX,
    MAX_CLASSES,
    Budget,
    Counted,
    DatasetFormatError,
    DatasetInfo,
    check_labels,
    decode_errors,
    maybe_gunzip,
)
from storage_app.formats.labels import LabelNames, is_number, name_error

CSV_BLOCK_CHARS = 1 << 18


@contextmanager
def _csv_text(path: Path, budget: Budget):
    """The file as UTF-8 text, gunzipped when it is gzip, every byte counted."""
    with open(path, "rb") as raw, decode_errors(path.name):
        source = maybe_gunzip(raw)
        counted = io.BufferedReader(Counted(source, budget, path.name), CHUNK)
        with io.TextIOWrapper(counted, encoding="utf-8-sig", errors="strict", newline="") as text:
            try:
                yield text
            except UnicodeDecodeError:
                raise DatasetFormatError("the file is not UTF-8 text") from None
            except csv.Error as exc:
                raise DatasetFormatError(f"malformed CSV: {exc}") from None


def _label_of(raw: str, line: int, kind: str | None) -> tuple[float | str, str]:
    """One label, checked: an integer class, or a name when the column holds names.
    ``kind`` is what the labels before it were ("int", "name" or None for none yet)."""
    if not is_number(raw):
        if kind == "int":
            raise DatasetFormatError(
                f"line {line}: label {raw!r} is not an integer, but the labels before it are integers "
                "(a label column holds integers or names, not both)"
            )
        problem = name_error(raw)
        if problem:
            raise DatasetFormatError(f"line {line}: {problem}")
        return raw, "name"
    if kind == "name":
        raise DatasetFormatError(
            f"line {line}: label {raw!r} is a number, but the labels before it are names "
            "(a label column holds integers or names, not both)"
        )
    label = float(raw)
    if not label.is_integer():
        raise DatasetFormatError(f"line {line}: label {raw!r} is not an integer")
    if label < 0:
        raise DatasetFormatError(f"line {line}: label {raw!r}; labels must be integers from 0 upwards")
    if label >= MAX_CLASSES:
        raise DatasetFormatError(f"line {line}: label {raw!r}; at most {MAX_CLASSES} classes are supported")
    return label, "int"


def _csv_block_slow(lines: list[str], first_line: int, li: int, header: list[str], kind: str | None):
    """Parse lines one by one with the csv module: the reference for what is accepted,
    and the one that names the line and column at fault."""
    xs, ys = [], []
    for line, row in enumerate(csv.reader(lines), start=first_line):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(header):
            raise DatasetFormatError(f"line {line}: {len(row)} fields, the header has {len(header)}")
        label, kind = _label_of(row[li].strip(), line, kind)
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
    return x, (np.array(ys, dtype=str) if kind == "name" else np.array(ys, dtype=np.int64)), kind


def _loadtxt(text: str, dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # loadtxt warns about blocks of blank lines
        return np.loadtxt(
            io.StringIO(text, newline=""), delimiter=",", dtype=dtype, comments=None, quotechar='"', ndmin=2
        )


def _csv_block_numeric(text: str, li: int, width: int):
    """A block whose every value is a number, labels valid integers and features finite
    float32: (features, labels); None for any other block."""
    try:
        values = _loadtxt(text, np.float64)
    except ValueError:
        return None
    if values.shape[0] == 0:
        return np.empty((0, width - 1), np.float32), np.empty(0, np.int64)
    if values.shape[1] != width:
        return None
    labels = values[:, li]
    with np.errstate(over="ignore", invalid="ignore"):  # overflow to inf is caught below
        x = np.delete(values, li, axis=1).astype(np.float32)
        labels_ok = bool(np.all((labels >= 0) & (labels < MAX_CLASSES) & (labels == np.floor(labels))))
    return (x, labels.astype(np.int64)) if labels_ok and np.isfinite(x).all() else None


def _csv_block_names(text: str, li: int, width: int):
    """A block of numeric features and labels that are all names: (features, names);
    None for any other block."""
    try:
        values = _loadtxt(text, str)
        if values.shape[0] == 0 or values.shape[1] != width:
            return None
        with np.errstate(over="ignore", invalid="ignore"):
            x = np.delete(values, li, axis=1).astype(np.float64).astype(np.float32)
    except ValueError:
        return None
    labels = np.char.strip(values[:, li])
    if not np.isfinite(x).all() or any(is_number(str(u)) or not u for u in np.unique(labels)):
        return None
    return x, labels


def _csv_block(text: str, first_line: int, li: int, header: list[str], kind: str | None):
    """Features (float32), labels (int64 classes, or names) and their kind for a block of
    whole lines. numpy's C parser reads a clean block four to eight times faster than the
    csv module; a block it refuses, or whose values fail a check, is parsed again by
    ``_csv_block_slow``, which decides and gives the reason, so the fast paths change the
    speed, never what is accepted."""
    if kind != "name":
        fast = _csv_block_numeric(text, li, len(header))
        if fast is not None:
            return (*fast, kind if not len(fast[1]) else "int")
    if kind != "int":
        named = _csv_block_names(text, li, len(header))
        if named is not None:
            return (*named, "name")
    with np.errstate(over="ignore"):
        return _csv_block_slow(io.StringIO(text, newline="").readlines(), first_line, li, header, kind)


def _count_lines(text: str) -> int:
    """Lines as the csv module counts them: ended by \\n, \\r\\n or \\r, the last one perhaps not."""
    ends = text.count("\n") + text.count("\r") - text.count("\r\n")
    return ends + (1 if text and text[-1] not in "\r\n" else 0)


def read_csv(path: Path, label_column: str, keep: bool, budget: Budget):
    """A CSV's features and labels: integer classes, or names mapped to indices in sorted order."""
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
        xs, ys, names = [], [], LabelNames(keep)
        n, line, lo, hi, kind = 0, 2, MAX_CLASSES, -1, None
        # Blocks of whole lines, a quarter megabyte and the rest of its last line at a time:
        # a block of four-byte rows takes about 10 MiB while it is parsed.
        while text := fh.read(CSV_BLOCK_CHARS) + fh.readline():
            x, y, kind = _csv_block(text, line, li, header, kind)
            if len(y):
                if kind == "name":
                    names.add(y, f"lines {line} to {line + _count_lines(text) - 1}: ")
                else:
                    lo, hi = min(lo, int(y.min())), max(hi, int(y.max()))
                    if keep:
                        ys.append(y.astype(np.uint16))  # labels are under MAX_CLASSES: a quarter of the memory
                n += len(y)
                if keep:
                    xs.append(x)
            line += _count_lines(text)
    if n == 0:
        raise DatasetFormatError("the file has a header but no rows")
    class_names, named = names.finish() if kind == "name" else ((), None)
    classes = len(class_names) or check_labels(np.array([lo, hi]))
    info = DatasetInfo(n, (len(header) - 1,), classes, class_names)
    if not keep:
        return info, None, None
    x = np.concatenate(xs)
    xs.clear()
    return info, x, named if named is not None else np.concatenate(ys, dtype=np.int64)
