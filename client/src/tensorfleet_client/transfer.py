"""Bytes in and out: a checkpoint download checked against its sha256, and a dataset
upload streamed from disk, each with an optional progress bar."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, BinaryIO, Union

from tqdm.auto import tqdm

from tensorfleet_client.errors import ChecksumMismatch, TensorFleetError, TransportError

Which = Union[str, int]
CHUNK = 1024 * 1024


def pick_checkpoint(checkpoints: list[dict[str, Any]], which: Which, *, job_label: str, status: str) -> dict[str, Any]:
    """The checkpoint ``which`` names: "final", "best" (highest val_accuracy, the earliest
    epoch on a tie, as retention keeps it), "latest" (the final one, else the last
    epoch's), or an epoch number."""
    epochs = sorted({c["epoch"] for c in checkpoints if c.get("kind") == "epoch"})
    kept = f"epochs kept: {epochs}" if epochs else "no checkpoint yet"
    if isinstance(which, bool) or not isinstance(which, (int, str)):
        raise TypeError(f"which must be 'final', 'best', 'latest' or an epoch number, not {which!r}")
    if isinstance(which, int) or (isinstance(which, str) and which.isdigit()):
        epoch = int(which)
        found = [c for c in checkpoints if c.get("kind") == "epoch" and c["epoch"] == epoch]
        if not found:
            raise TensorFleetError(f"job {job_label} has no checkpoint for epoch {epoch} ({kept})")
        return found[0]
    final = [c for c in checkpoints if c.get("kind") == "final"]
    if which == "final":
        if not final:
            raise TensorFleetError(
                f"job {job_label} has no final checkpoint (status {status}; {kept}): "
                "ask for 'latest', 'best' or an epoch"
            )
        return final[0]
    if which == "latest":
        if final:
            return final[0]
        if not checkpoints:
            raise TensorFleetError(f"job {job_label} has no checkpoint yet (status {status})")
        return max(checkpoints, key=lambda c: c["epoch"])
    if which == "best":
        scored = [c for c in checkpoints if c.get("val_accuracy") is not None]
        if not scored:
            raise TensorFleetError(f"job {job_label} has no evaluated checkpoint yet (status {status})")
        return min(scored, key=lambda c: (-c["val_accuracy"], c["epoch"], c.get("kind") != "epoch"))
    raise ValueError(f"which must be 'final', 'best', 'latest' or an epoch number, not {which!r}")


def _attachment_name(disposition: str) -> str | None:
    match = re.search(r"filename\*=UTF-8''([^;]+)", disposition) or re.search(r'filename="?([^";]+)"?', disposition)
    if not match:
        return None
    from urllib.parse import unquote

    name = os.path.basename(unquote(match.group(1)).strip())
    return name if name not in ("", ".", "..") else None


def target_path(path: str | os.PathLike | None, served_name: str | None, fallback: str) -> Path:
    """Where a download goes: ``path`` itself, or the server's file name inside ``path``
    (a folder) or inside the current folder (no path)."""
    name = served_name or fallback
    if path is None:
        return Path.cwd() / name
    target = Path(path).expanduser()
    if target.is_dir():
        return target / name
    if not target.parent.is_dir():
        raise TensorFleetError(f"folder {target.parent} does not exist")
    return target


def save_verified(response, path, *, expected_sha256: str, fallback_name: str, progress: bool = False) -> Path:
    """Stream ``response``'s body into ``path`` (through a ``.part`` file) while hashing it;
    keep the file only if its sha256 is the one the server announced in
    ``X-Checksum-SHA256`` and in the checkpoint's listing."""
    announced = response.headers.get("x-checksum-sha256", "").lower()
    if announced and expected_sha256 and announced != expected_sha256.lower():
        response.close()
        raise ChecksumMismatch(f"the server announced sha256 {announced} but lists {expected_sha256}")
    expected = announced or expected_sha256.lower()
    target = target_path(path, _attachment_name(response.headers.get("content-disposition", "")), fallback_name)
    partial = target.with_name(target.name + ".part")
    digest, size = hashlib.sha256(), 0
    length = int(response.headers.get("content-length") or 0) or None
    try:
        with (
            open(partial, "wb") as out,
            tqdm(total=length, unit="B", unit_scale=True, desc=target.name, disable=not progress, leave=False) as bar,
        ):
            for chunk in response.iter_bytes(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                bar.update(len(chunk))
        if length is not None and size != length:
            raise TransportError(f"the download of {target.name} stopped after {size} of {length} bytes")
        if expected and digest.hexdigest() != expected:
            raise ChecksumMismatch(f"{target.name}: sha256 {digest.hexdigest()}, expected {expected}; not kept")
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        response.close()
    return target


class ProgressFile:
    """A file opened for reading whose reads move a progress bar (httpx reads a multipart
    upload's file in chunks, so the bar follows the bytes sent)."""

    def __init__(self, fh: BinaryIO, bar):
        self._fh = fh
        self._bar = bar

    def read(self, size: int = -1) -> bytes:
        chunk = self._fh.read(size)
        self._bar.update(len(chunk))
        return chunk

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self._fh.seek(offset, whence)
        if whence == 0 and offset == 0:
            self._bar.reset()
        return position

    def tell(self) -> int:
        return self._fh.tell()

    def fileno(self) -> int:
        return self._fh.fileno()
