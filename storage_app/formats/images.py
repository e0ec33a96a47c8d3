"""Image folders: a zip or tar (plain or gzipped) of ``class_name/*.png|jpg|jpeg``.

Decoded once, at upload, into what the workers load: an NPZ of uint8 ``X`` (N, C, H, W)
and int64 ``y``, the classes numbered in the sorted order of their folder names. Every
image is resized to one size (given at upload, or the most common one); grayscale
images keep one channel, and a folder that holds any colour image becomes RGB.

Bounded like every other format: the archive's entries are counted (a zip's from its
end record, before its directory is read; a tar's as it streams), every byte a member
or a tar's gzip stream yields is claimed from the budget, each image's size is read
from its header (Pillow opens lazily) and checked before it is decoded, and the
decoded array is claimed before it is allocated. Only PNG and JPEG decoders run; a
link, a path leading outside the archive or a file that is not an image is refused.
"""

from __future__ import annotations

import io
import re
import stat
import struct
import tarfile
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from storage_app.formats.common import (
    CHUNK,
    MAX_CLASSES,
    Budget,
    Counted,
    DatasetFormatError,
    DatasetInfo,
    DatasetTooLarge,
    decode_errors,
    maybe_gunzip,
    open_member,
    open_zip,
)
from storage_app.formats.labels import name_error

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
PILLOW_FORMATS = ("PNG", "JPEG")  # the only decoders Pillow may try on a member
MAX_IMAGE_MEMBERS = 65_536  # entries in an image archive (CIFAR's 60,000 images fit)
MAX_IMAGE_PIXELS = 1 << 26  # one image's width x height, from its header (Pillow warns at 89M)
MAX_SIDE = 1024  # the largest side image_size may ask for
GRAY_MODES = {"1", "L", "LA", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"}
SKIPPED_FILES = {"Thumbs.db", "desktop.ini"}
NPZ_DATE = (1980, 1, 1, 0, 0, 0)  # fixed: the same images give the same bytes, hence the same sha256
BROKEN = (OSError, SyntaxError, ValueError, struct.error, zlib.error, EOFError, IndexError)


@dataclass
class _Image:
    path: str
    data: bytes
    size: tuple[int, int]  # (width, height), from the header
    gray: bool


def parse_image_size(value) -> tuple[int, int] | None:
    """``image_size`` as (height, width): a side (``32``) or ``WIDTHxHEIGHT`` (``64x32``)."""
    if value is None or value == "":
        return None
    match = re.fullmatch(r"\s*(\d{1,5})\s*(?:[xX×]\s*(\d{1,5})\s*)?", str(value))
    if not match or isinstance(value, bool):
        raise DatasetFormatError(f"image_size {value!r}: give a side (32) or WIDTHxHEIGHT (32x32)")
    width, height = int(match[1]), int(match[2] or match[1])
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise DatasetFormatError(f"image_size {value!r}: each side is from 1 to {MAX_SIDE} pixels")
    return height, width


def _member_path(name: str) -> str | None:
    """The member's path in the archive; None for one to skip (folders, hidden files, the
    Finder's __MACOSX); refused when it leads outside the archive or is not an image."""
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts or re.match(r"[A-Za-z]:", name):
        raise DatasetFormatError(f"{name!r} leads outside the archive; members are read by relative paths only")
    parts = [p for p in parts if p not in ("", ".")]
    if not parts or parts[0] == "__MACOSX" or any(p.startswith(".") for p in parts) or parts[-1] in SKIPPED_FILES:
        return None
    if not parts[-1].lower().endswith(IMAGE_SUFFIXES):
        raise DatasetFormatError(f"{name}: not a .png, .jpg or .jpeg file (image folders hold images only)")
    return "/".join(parts)


def _zip_members(path: Path, budget: Budget) -> Iterator[tuple[str, bytes]]:
    refusal = "not a zip or tar of image folders"
    with open_zip(path, refusal, MAX_IMAGE_MEMBERS) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                raise DatasetFormatError(f"{info.filename} is a symbolic link; links are not followed")
            name = _member_path(info.filename)
            if name is None:
                continue
            with open_member(zf, info, budget) as fp, decode_errors(info.filename):
                data = fp.read()  # zipfile yields at most the declared size, checked by open_member
            budget.claim(len(data), info.filename)
            yield name, data


def _tar_members(path: Path, budget: Budget) -> Iterator[tuple[str, bytes]]:
    """A tar read as a stream: every byte of it (headers too, after gunzip) claimed."""
    with open(path, "rb") as raw, decode_errors(path.name):
        stream = io.BufferedReader(Counted(maybe_gunzip(raw), budget, path.name), CHUNK)
        try:
            archive = tarfile.open(fileobj=stream, mode="r|")
        except tarfile.TarError:
            raise DatasetFormatError("not a zip or tar of image folders (a tar may be gzipped)") from None
        with archive:
            count = 0
            try:
                for info in archive:
                    count += 1
                    if count > MAX_IMAGE_MEMBERS:
                        raise DatasetTooLarge(f"the tar holds more than {MAX_IMAGE_MEMBERS} entries")
                    if info.isdir():
                        continue
                    if info.issym() or info.islnk():
                        raise DatasetFormatError(f"{info.name} is a link; links are not followed")
                    if not info.isreg():
                        raise DatasetFormatError(f"{info.name} is not a regular file")
                    name = _member_path(info.name)
                    if name is None:
                        continue
                    budget.check_declared(info.size, info.name)
                    member = archive.extractfile(info)
                    yield name, member.read() if member else b""
            except tarfile.TarError as exc:
                raise DatasetFormatError(f"broken tar file ({exc})") from None


def _members(path: Path, budget: Budget) -> Iterator[tuple[str, bytes]]:
    with open(path, "rb") as fh:
        head = fh.read(4)
    return _zip_members(path, budget) if head[:2] == b"PK" else _tar_members(path, budget)


def _header(path: str, data: bytes, budget: Budget) -> _Image:
    """An image's size and kind from its header, checked before anything is decoded."""
    try:
        with Image.open(io.BytesIO(data), formats=PILLOW_FORMATS) as im:
            (width, height), mode, bands = im.size, im.mode, len(im.getbands())
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DatasetTooLarge(f"{path} declares more pixels than are decoded ({exc})") from None
    except UnidentifiedImageError:
        raise DatasetFormatError(f"{path}: not a PNG or JPEG image") from None
    except BROKEN as exc:
        raise DatasetFormatError(f"{path}: broken image ({exc})") from None
    if width < 1 or height < 1:
        raise DatasetFormatError(f"{path}: an image of {width}x{height} pixels holds nothing")
    if width * height > MAX_IMAGE_PIXELS:
        raise DatasetTooLarge(
            f"{path} declares {width}x{height} pixels decompressed; at most {MAX_IMAGE_PIXELS} pixels an image"
        )
    budget.check_declared(width * height * bands, path)  # what decoding it holds for a moment
    return _Image(path, data, (width, height), mode in GRAY_MODES)


def _classes(images: list[_Image]) -> list[str]:
    """The class of each image: its folder. Images sit one folder deep (``cat/1.png``), or
    all under one common folder (``pets/cat/1.png``)."""
    if not images:
        raise DatasetFormatError("the archive holds no .png, .jpg or .jpeg images")
    split = [im.path.split("/") for im in images]
    roots = {tuple(parts[:-2]) for parts in split}
    if any(len(parts) < 2 for parts in split) or len(roots) > 1 or len({len(p) for p in split}) > 1:
        odd = next((im.path for im, parts in zip(images, split, strict=True) if len(parts) < 2), None)
        shown = odd or ", ".join(sorted({"/".join(p[:-1]) for p in split})[:4])
        raise DatasetFormatError(
            f"images sit in one folder per class (class_name/image.png), all at the same depth; found {shown}"
        )
    classes = [parts[-2] for parts in split]
    for name in set(classes):
        problem = name_error(name)
        if problem:
            raise DatasetFormatError(f"class folder {name!r}: {problem}")
    return classes


def _decode(image: _Image, gray: bool, size: tuple[int, int]) -> np.ndarray:
    """One image as uint8 (C, H, W) of ``size`` (width, height)."""
    mode = "L" if gray else "RGB"
    try:
        with Image.open(io.BytesIO(image.data), formats=PILLOW_FORMATS) as opened:
            if opened.format == "JPEG":
                opened.draft(mode, size)  # decode a large JPEG at a reduced scale (1/2 to 1/8)
            opened.load()
            im: Image.Image = opened
            if im.mode.startswith("I;16"):  # 16-bit gray: keep the top 8 bits
                im = Image.fromarray((np.asarray(im, dtype=np.uint16) >> 8).astype(np.uint8))  # mode L
            if im.mode != mode:
                im = im.convert(mode)
            if im.size != size:
                im = im.resize(size, Image.Resampling.BILINEAR)
            pixels = np.asarray(im, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DatasetTooLarge(f"{image.path} declares more pixels than are decoded ({exc})") from None
    except BROKEN as exc:
        raise DatasetFormatError(f"{image.path}: broken image ({exc})") from None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def _write_npz(out: Path, x: np.ndarray, y: np.ndarray) -> None:
    """``numpy.savez`` with fixed timestamps, uncompressed: the workers read it fast."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in (("X.npy", x), ("y.npy", y)):
            with zf.open(zipfile.ZipInfo(name, date_time=NPZ_DATE), "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, array, allow_pickle=False)


def images_to_npz(path: Path, out: Path, image_size: tuple[int, int] | None, budget: Budget) -> DatasetInfo:
    """Decode the image-folder archive at ``path`` into an NPZ at ``out``; ``image_size``
    is (height, width), None for the most common size. Returns what the NPZ holds."""
    images = sorted((_header(name, data, budget) for name, data in _members(path, budget)), key=lambda im: im.path)
    classes = _classes(images)
    names = sorted(set(classes))
    if len(names) < 2:
        raise DatasetFormatError(f"a classification dataset needs at least two classes; found only {names[0]!r}")
    if len(names) > MAX_CLASSES:
        raise DatasetFormatError(f"{len(names)} class folders; at most {MAX_CLASSES} classes are supported")
    if image_size is None:  # the most common size; a tie goes to the larger
        (width, height), _ = max(Counter(im.size for im in images).items(), key=lambda kv: (kv[1], kv[0]))
    else:
        height, width = image_size
    gray = all(im.gray for im in images)
    channels = 1 if gray else 3
    budget.claim(len(images) * (channels * height * width + 8), "the decoded images", declared=True)
    x = np.empty((len(images), channels, height, width), np.uint8)
    for i, image in enumerate(images):
        x[i] = _decode(image, gray, (width, height))
        image.data = b""  # each compressed image is let go once decoded
    index = {name: i for i, name in enumerate(names)}
    y = np.array([index[c] for c in classes], np.int64)
    _write_npz(out, x, y)
    return DatasetInfo(len(images), (channels, height, width), len(names), tuple(names))
