"""What every dataset reader shares: the errors, the budget of decompressed bytes,
streams that count what they yield, and zip members opened only when safe to read."""

from __future__ import annotations

import gzip
import io
import lzma
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_CLASSES = 10_000
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
    class_names: tuple[str, ...] = ()  # the labels' names in index order, when the labels are names


class Budget:
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


class Counted(io.RawIOBase):
    """A binary stream that claims every byte read from it against the budget."""

    def __init__(self, raw, budget: Budget, what: str):
        self._raw, self._budget, self._what = raw, budget, what

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        # A chunk at a time: a reader asking for a gigabyte at once (tarfile reading a pax
        # header's declared size) is refused by the budget before it holds more than that.
        data = self._raw.read(min(len(buffer), CHUNK))
        self._budget.claim(len(data), self._what)
        buffer[: len(data)] = data
        return len(data)


def read_exact(fp, n: int) -> bytes:
    """Up to ``n`` bytes: fewer only at the end of the stream."""
    parts, left = [], n
    while left > 0:
        data = fp.read(min(left, CHUNK))
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


def maybe_gunzip(fp):
    """The stream, decompressed when it starts with gzip's magic bytes (whatever its name says)."""
    head = fp.peek(2)[:2]
    return gzip.GzipFile(fileobj=fp, mode="rb") if head == b"\x1f\x8b" else fp


@contextmanager
def decode_errors(what: str):
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


def check_labels(labels: np.ndarray) -> int:
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


def open_zip(path: Path, refusal: str, max_members: int = MAX_ZIP_MEMBERS) -> zipfile.ZipFile:
    """The zip at ``path``, its entry count checked before its central directory is read."""
    with decode_errors(path.name):
        with open(path, "rb") as fh:
            # zipfile's own reader of the end record (zip64 included): private, but in every
            # CPython since 2.x, and test_upload_hardening fails if it goes.
            end = zipfile._EndRecData(fh)  # type: ignore[attr-defined]
        if end is None:
            raise DatasetFormatError(refusal)
        entries = end[zipfile._ECD_ENTRIES_TOTAL]  # type: ignore[attr-defined]
        if entries > max_members:
            raise DatasetTooLarge(f"the zip holds {entries} entries; at most {max_members} are read")
        try:
            return zipfile.ZipFile(path)
        except zipfile.BadZipFile:
            raise DatasetFormatError(refusal) from None


def open_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget):
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
    with decode_errors(info.filename):
        return zf.open(info)
