"""A worker process's memory of the states it last read or wrote: global weights with
their outer state, epoch checkpoints and shard optimiser states, each under a name
that fixes its bytes (a content-addressed key, a checkpoint's sha256, or a key whose
bytes every try writes the same). A round's next task on the same worker then reads
nothing from storage; a miss reads storage as before.

Values are shared, never copied on the way out: callers treat them as read-only
(``load_state_dict`` copies into the model). Bounded in bytes, least recently used out.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any

MAX_BYTES = int(float(os.environ.get("TENSORFLEET_STATE_CACHE_MB", "512")) * 2**20)

_LOCK = threading.Lock()
_ENTRIES: OrderedDict[str, tuple[int, Any]] = OrderedDict()
_SIZE = [0]


def cache_get(name: str) -> Any | None:
    with _LOCK:
        found = _ENTRIES.get(name)
        if found is None:
            return None
        _ENTRIES.move_to_end(name)
        return found[1]


def cache_put(name: str, value: Any, nbytes: int) -> None:
    """Keep ``value`` under ``name``; one larger than the whole cache is not kept."""
    if nbytes > MAX_BYTES:
        return
    with _LOCK:
        old = _ENTRIES.pop(name, None)
        if old is not None:
            _SIZE[0] -= old[0]
        _ENTRIES[name] = (nbytes, value)
        _SIZE[0] += nbytes
        while _SIZE[0] > MAX_BYTES and _ENTRIES:
            size, _ = _ENTRIES.popitem(last=False)[1]
            _SIZE[0] -= size


def cache_clear() -> None:
    with _LOCK:
        _ENTRIES.clear()
        _SIZE[0] = 0
