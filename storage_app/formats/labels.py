"""Labels given as names (``setosa``, ``cat``): mapped to indices in sorted order, the
same order at upload and on every worker, so a name always means the same index."""

from __future__ import annotations

import numpy as np

from storage_app.formats.common import MAX_CLASSES, DatasetFormatError

MAX_NAME_CHARS = 200  # a class name travels in the job, the API and the checkpoint's metadata


def is_number(text: str) -> bool:
    """Whether a label reads as a number (then the column holds numbers, not names)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def name_error(name: str) -> str | None:
    """Why ``name`` cannot name a class, or None."""
    if not name:
        return "an empty label"
    if len(name) > MAX_NAME_CHARS:
        return f"a label of {len(name)} characters (at most {MAX_NAME_CHARS})"
    return None


class LabelNames:
    """String labels read in blocks: every name seen, and (when kept) each block's labels
    as codes into the block's own sorted names, remapped to the final order at the end.
    Kept that way a label costs two bytes, whatever the length of its name."""

    def __init__(self, keep: bool):
        self.keep = keep
        self.names: set[str] = set()
        self.blocks: list[tuple[list[str], np.ndarray]] = []

    def add(self, labels: np.ndarray, where: str = "") -> None:
        """A block of names (stripped, numbers already refused by the caller)."""
        found, codes = np.unique(labels, return_inverse=True)
        uniques = [str(u) for u in found]
        for name in uniques:
            problem = name_error(name)
            if problem:
                raise DatasetFormatError(f"{where}{problem}")
        self.names.update(uniques)
        if len(self.names) > MAX_CLASSES:
            raise DatasetFormatError(f"the labels name more than {MAX_CLASSES} classes; at most {MAX_CLASSES} are read")
        if self.keep:
            self.blocks.append((uniques, codes.reshape(-1).astype(np.uint16)))

    def finish(self) -> tuple[tuple[str, ...], np.ndarray | None]:
        """The names in index order, and the labels as indices (None unless kept)."""
        names = tuple(sorted(self.names))
        if len(names) < 2:
            raise DatasetFormatError("a classification dataset needs at least two classes")
        if not self.keep:
            return names, None
        index = {name: i for i, name in enumerate(names)}
        parts = [np.array([index[n] for n in uniques], np.int64)[codes] for uniques, codes in self.blocks]
        self.blocks.clear()
        return names, np.concatenate(parts)
