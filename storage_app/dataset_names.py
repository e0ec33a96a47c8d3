"""The rules for a dataset's name: what a job can find it by, and the name an upload
gets from its file name when none is given."""

from __future__ import annotations

import re
import unicodedata
import uuid
from pathlib import Path

from storage_app.builtin_datasets import BUILTIN_DATASETS

NAME_MAX_CHARS = 200  # Dataset.name's max_length
VERSIONED = re.compile(r"(.+)@([0-9]+)")  # "name@3": version 3 of the dataset "name"


def dataset_name_error(name: str) -> str | None:
    """Why ``name`` cannot name a dataset, or None when it can.

    A job finds its dataset by a built-in name first, then by one of the owner's names,
    then by id, then as a path or s3:// URI (``jobs.specs``), and strips the reference:
    a name a job could never reach, or one that would hide an id or a path, is refused,
    and so is one ending in "@<number>", which names a version (``dataset_reference``).
    """
    if not name:
        return "A dataset needs a name."
    if name != name.strip():
        return "A dataset name cannot start or end with spaces."
    if len(name) > NAME_MAX_CHARS:
        return f"A dataset name has at most {NAME_MAX_CHARS} characters; this one has {len(name)}."
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        return "A dataset name cannot hold control characters."
    if name in BUILTIN_DATASETS:
        return f"{name!r} is the name of a built-in dataset."
    if name.startswith(("/", "s3://")):
        return "A dataset name cannot look like a path."
    if VERSIONED.fullmatch(name):
        return "A dataset name cannot end in @ and a number: name@3 names version 3 of a dataset."
    try:
        uuid.UUID(name)
    except ValueError:
        return None
    return "A dataset name cannot look like an id."


def dataset_reference(value: str) -> tuple[str, int | None]:
    """A job's reference to an uploaded dataset: ``name`` (its newest version, None) or
    ``name@3`` (version 3)."""
    versioned = VERSIONED.fullmatch(value)
    return (versioned[1], int(versioned[2])) if versioned else (value, None)


def dataset_name_from_file(filename: str) -> str:
    """The name an upload gets when none is given: its file name up to the first dot,
    cut to fit (it may still be refused by ``dataset_name_error``, a built-in's name)."""
    return Path(filename).name.split(".")[0].strip()[:NAME_MAX_CHARS].strip() or "dataset"
