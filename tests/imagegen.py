"""Image folders the tests draw themselves with Pillow: shapes of three classes, packed
into zips or tars as a user would (``class_name/0001.png``)."""

from __future__ import annotations

import io
import tarfile
import zipfile

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")


def shape_image(kind: str, rng: np.random.Generator, size: int = 32, mode: str = "RGB") -> Image.Image:
    """A filled circle, square or triangle of random place, size and colours on a random background."""
    background = tuple(int(v) for v in rng.integers(0, 90, 3))
    colour = tuple(int(v) for v in rng.integers(140, 256, 3))
    im = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(im)
    side = int(rng.integers(size * 3 // 8, size * 5 // 8))
    x0, y0 = (int(v) for v in rng.integers(1, size - side - 1, 2))
    box = [x0, y0, x0 + side, y0 + side]
    if kind == "circle":
        draw.ellipse(box, fill=colour)
    elif kind == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(x0, y0 + side), (x0 + side, y0 + side), (x0 + side // 2, y0)], fill=colour)
    return im.convert(mode) if mode != "RGB" else im


def encoded(im: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


def shape_files(
    per_class: int, seed: int = 0, size: int = 32, mode: str = "RGB", fmt: str = "PNG", root: str = ""
) -> dict[str, bytes]:
    """``{"<root>circle/0000.png": bytes, ...}``: ``per_class`` images of each shape."""
    rng = np.random.default_rng(seed)
    suffix = ".png" if fmt == "PNG" else ".jpg"
    return {
        f"{root}{kind}/{i:04d}{suffix}": encoded(shape_image(kind, rng, size, mode), fmt)
        for kind in SHAPES
        for i in range(per_class)
    }


def zip_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_of(files: dict[str, bytes], gz: bool = False, links: dict[str, str] | None = None) -> bytes:
    """A tar of ``files``; ``links`` adds symbolic links (name -> target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()
