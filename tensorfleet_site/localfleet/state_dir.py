"""The local fleet's state folder (TENSORFLEET_STATE_DIR, `var/`): one fleet at a time,
and private to the user who runs it.

It holds the SQLite database (users, token digests, sessions), the embedded Redis's
append-only file, datasets, checkpoints, logs and Flower's password: nothing in it is
for other users of the machine to read.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

LOCK_NAME = "fleet.lock"
# What the fleet and every process it starts create from now on: owner only.
PRIVATE_UMASK = 0o077


class StateDirBusy(RuntimeError):
    """Another process holds the state folder's lock."""

    def __init__(self, state: Path, holder: str):
        self.state, self.holder = state, holder
        super().__init__(
            f"another fleet (pid {holder}) is running on the state folder {state}; "
            "stop it first, or give this one its own folder with TENSORFLEET_STATE_DIR"
        )


class StateLock:
    """An exclusive ``flock`` on ``<state>/fleet.lock``, held while the fleet runs.

    The kernel drops the lock when the process ends, however it ends, so a crash leaves
    no stale lock behind; the file itself stays (removing it would let a third fleet
    lock a new file while the second still holds the old one). The file names the pid
    that holds it, for the message a second fleet prints. The descriptor is not
    inherited by the fleet's children (Python opens files non-inheritable)."""

    def __init__(self, state: Path):
        self.path = Path(state) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StateDirBusy(self.path.parent, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> StateLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def state_dir_in_use(state: Path) -> bool:
    """Whether a fleet runs on ``state`` now (holds its lock). Taking the lock for a moment
    tells; a folder another user owns counts as in use."""
    try:
        fd = os.open(Path(state) / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        return False
    except PermissionError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def make_private(state: Path, extra_files: list[Path] | tuple[Path, ...] = ()) -> list[Path]:
    """Set the umask to 077 for this process and its future children, create ``state``
    if needed, and take group and other permissions off everything already in it (a
    folder becomes 0700, a file 0600) and off ``extra_files`` (a database kept
    elsewhere). Symbolic links are left alone: chmod would follow one out of the folder.
    Returns the paths that could not be changed (owned by another user)."""
    os.umask(PRIVATE_UMASK)
    state.mkdir(parents=True, exist_ok=True)
    failed = []
    paths = [state, *extra_files]
    for root, dirs, files in os.walk(state):
        paths += [Path(root, name) for name in dirs + files]
    for path in paths:
        try:
            mode = path.lstat().st_mode
            if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
                path.chmod(stat.S_IMODE(mode) & 0o700)
        except FileNotFoundError:
            continue  # a log rotated or a WAL checkpointed away meanwhile
        except PermissionError:
            failed.append(path)
    return failed
