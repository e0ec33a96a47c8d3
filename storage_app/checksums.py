"""Copying stored bytes to a local file while checking their sha256: a download or a
worker's cached copy is either the recorded content or no file at all."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


class ChecksumMismatch(ValueError):
    def __init__(self, got: str, expected: str):
        super().__init__(f"got sha256 {got}, recorded {expected}")
        self.got, self.expected = got, expected


def copy_verified(src: BinaryIO, target: Path, *, sha256: str) -> None:
    """Stream ``src`` into ``target`` through a ``.part`` file, renamed only when the
    content hashes to ``sha256``; on a mismatch nothing is left behind."""
    digest = hashlib.sha256()
    tmp = target.with_name(f"{target.name}.{os.getpid()}.part")
    try:
        with open(tmp, "wb") as dst:
            for chunk in iter(lambda: src.read(CHUNK), b""):
                digest.update(chunk)
                dst.write(chunk)
        if digest.hexdigest() != sha256:
            raise ChecksumMismatch(digest.hexdigest(), sha256)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
