"""Parquet datasets: numeric feature columns and one label column (integers or names).

The footer is read first, under Thrift size limits, and everything it declares (rows,
columns, row groups and their uncompressed bytes, the arrays the features become) is
checked against the budget before a page is read. Pages are then read a batch of rows
at a time, the label column kept dictionary-encoded (a name repeated a million times
is held once), and a file holding more rows than it declared is refused.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from storage_app.formats.common import (
    FLOAT32_MAX,
    MAX_CLASSES,
    Budget,
    DatasetFormatError,
    DatasetInfo,
    check_labels,
)
from storage_app.formats.labels import LabelNames

MAX_COLUMNS = 65_536
MAX_ROW_GROUPS = 100_000
MAX_ROWS = 2**31 - 1  # Dataset.num_samples
BATCH_BYTES = 8 << 20  # float64 values per batch of rows, across its columns
BATCH_ROWS = 65_536
# pyarrow's bounds on the footer's decoded metadata (its defaults are 100 MB and 1M entries)
THRIFT_STRING_LIMIT = 16 << 20
THRIFT_CONTAINER_LIMIT = 1_000_000


@contextmanager
def _arrow_errors(what: str):
    try:
        yield
    except DatasetFormatError:
        raise
    except (pa.ArrowException, OSError, ValueError) as exc:  # ArrowInvalid is a ValueError, ArrowIOError an OSError
        raise DatasetFormatError(f"{what} ({exc})") from None


def _open(path: Path, dictionary: tuple[str, ...] = ()) -> pq.ParquetFile:
    """The file's footer, read under limits; columns in ``dictionary`` are read dictionary-encoded."""
    with _arrow_errors("not a readable Parquet file"):
        return pq.ParquetFile(
            path,
            memory_map=False,
            pre_buffer=False,
            buffer_size=1 << 20,
            read_dictionary=list(dictionary) or None,
            thrift_string_size_limit=THRIFT_STRING_LIMIT,
            thrift_container_size_limit=THRIFT_CONTAINER_LIMIT,
        )


def _label_kind(kind: pa.DataType) -> str | None:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind):
        return "int"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return "name"
    return None


def _columns(pf: pq.ParquetFile, label_column: str) -> tuple[list[str], str]:
    """The feature columns in file order, and the label column's kind ("int" or "name")."""
    schema = pf.schema_arrow
    names = schema.names
    if len(names) > MAX_COLUMNS:
        raise DatasetFormatError(f"the file has {len(names)} columns; at most {MAX_COLUMNS} are read")
    if len(set(names)) != len(names):
        raise DatasetFormatError("two columns have the same name")
    if label_column not in names:
        raise DatasetFormatError(f"no column named {label_column!r} (columns: {', '.join(names[:20])})")
    if len(names) < 2:
        raise DatasetFormatError("a Parquet dataset needs at least one feature column besides the label")
    for field in schema:
        numeric = pa.types.is_integer(field.type) or pa.types.is_floating(field.type) or pa.types.is_boolean(field.type)
        if field.name != label_column and not numeric:
            raise DatasetFormatError(f"column {field.name!r} holds {field.type}; feature columns hold numbers")
    kind = _label_kind(schema.field(label_column).type)
    if kind is None:
        raise DatasetFormatError(
            f"label column {label_column!r} holds {schema.field(label_column).type}; labels are integers or names"
        )
    return [n for n in names if n != label_column], kind


def _declared_rows(pf: pq.ParquetFile, features: int, budget: Budget) -> int:
    """The rows the footer declares, with what they cost claimed before a page is read."""
    meta = pf.metadata
    if meta.num_row_groups > MAX_ROW_GROUPS:
        raise DatasetFormatError(f"the file has {meta.num_row_groups} row groups; at most {MAX_ROW_GROUPS} are read")
    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    rows = max(meta.num_rows, sum(g.num_rows for g in groups))
    if rows == 0:
        raise DatasetFormatError("the file has no rows")
    if rows > MAX_ROWS:
        raise DatasetFormatError(f"the file declares {rows} rows; at most {MAX_ROWS} are read")
    # the encoded pages, and the float32 features and int64 labels they become
    cost = sum(max(0, g.total_byte_size) for g in groups) + rows * (4 * features + 8)
    budget.claim(cost, f"the Parquet file ({rows} rows of {features} features)", declared=True)
    return rows


def _features(batch: pa.RecordBatch, names: list[str], first_row: int) -> np.ndarray:
    x = np.empty((batch.num_rows, len(names)), np.float32)
    for j, name in enumerate(names):
        column = batch.column(name)
        if column.null_count:
            raise DatasetFormatError(
                f"column {name!r} has missing values (rows {first_row} to {first_row + len(x) - 1})"
            )
        values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
        if not (np.isfinite(values).all() and (np.abs(values) <= FLOAT32_MAX).all()):
            raise DatasetFormatError(
                f"column {name!r} holds NaN or infinite values, or values beyond float32's range "
                f"(rows {first_row} to {first_row + len(x) - 1})"
            )
        x[:, j] = values
    return x


def _labels(column: pa.Array, kind: str, where: str) -> np.ndarray:
    """A batch's labels: integer classes (float64, checked), or names (stripped)."""
    if column.null_count:
        raise DatasetFormatError(f"{where}: missing labels")
    if kind == "name":
        if isinstance(column, pa.DictionaryArray):
            names = np.array([str(v).strip() for v in column.dictionary.to_pylist()] or [""], dtype=object)
            return names[np.asarray(column.indices.to_numpy(zero_copy_only=False), dtype=np.int64)]
        return np.array([str(v).strip() for v in column.to_pylist()], dtype=object)
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    bad = ~(np.isfinite(values) & (values == np.floor(values)) & (values >= 0) & (values < MAX_CLASSES))
    if bad.any():
        raise DatasetFormatError(
            f"{where}: label {float(values[bad][0]):g}; labels are integers from 0 to {MAX_CLASSES - 1} (or names)"
        )
    return values


def read_parquet(path: Path, label_column: str, keep: bool, budget: Budget):
    """A Parquet file's features (float32) and labels: integer classes, or names mapped to
    indices in sorted order."""
    features, kind = _columns(_open(path), label_column)
    pf = _open(path, (label_column,)) if kind == "name" else _open(path)
    declared = _declared_rows(pf, len(features), budget)
    batch_rows = max(1, min(BATCH_ROWS, BATCH_BYTES // (8 * (len(features) + 1))))
    xs, ys, names = [], [], LabelNames(keep)
    n, lo, hi = 0, MAX_CLASSES, -1
    with _arrow_errors("cannot read the Parquet file"):
        for batch in pf.iter_batches(batch_size=batch_rows, columns=[*features, label_column], use_threads=False):
            if n + batch.num_rows > declared:
                raise DatasetFormatError(f"the file holds more rows than the {declared} its metadata declares")
            where = f"rows {n + 1} to {n + batch.num_rows}"
            x = _features(batch, features, n + 1)
            y = _labels(batch.column(label_column), kind, where)
            if kind == "name":
                names.add(y, f"{where}: ")
            elif len(y):
                lo, hi = min(lo, int(y.min())), max(hi, int(y.max()))
                if keep:
                    ys.append(y.astype(np.uint16))
            if keep:
                xs.append(x)
            n += batch.num_rows
    if n == 0:
        raise DatasetFormatError("the file has no rows")
    class_names, named = names.finish() if kind == "name" else ((), None)
    classes = len(class_names) or check_labels(np.array([lo, hi]))
    info = DatasetInfo(n, (len(features),), classes, class_names)
    if not keep:
        return info, None, None
    x = np.concatenate(xs)
    xs.clear()
    return info, x, named if named is not None else np.concatenate(ys, dtype=np.int64)
