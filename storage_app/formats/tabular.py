"""CSV datasets: a header, one row per sample, one column of integer labels."""

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


def read_csv(path: Path, label_column: str, keep: bool, budget: Budget):
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
    classes = check_labels(np.array([lo, hi]))
    info = DatasetInfo(n, (len(header) - 1,), classes)
    if not keep:
        return info, None, None
    x = np.concatenate(xs)
    xs.clear()
    return info, x, np.concatenate(ys, dtype=np.int64)
