"""A model builder's arguments as data: the schema of a job's ``model_args``, and its check.

A worker describes each builder it can run (``workers.registry``) as a mapping from
argument name to ``{"type", "default", "required"}``, plus ``"nullable": true`` for an
``X | None`` annotation and ``"choices": [...]`` for a ``Literal[...]`` one. Types are
``int``, ``float``, ``bool``, ``str`` and ``list[...]`` of one of those. The API checks a
job's ``model_args`` against the published schema, and the worker checks them again
before it builds, with this one function. Pure: no Django, no torch.
"""

from __future__ import annotations

import math
from typing import Any

SCALAR_TYPES = ("int", "float", "bool", "str")
TYPES = SCALAR_TYPES + tuple(f"list[{t}]" for t in SCALAR_TYPES)


def type_shown(spec: dict) -> str:
    """How an argument's type reads in a message: ``int``, ``str (one of 'a', 'b')``, ``float or null``."""
    shown = spec["type"]
    if spec.get("choices"):
        shown += f" (one of {', '.join(map(repr, spec['choices']))})"
    if spec.get("nullable"):
        shown += " or null"
    return shown


def _scalar(kind: str, value: Any) -> tuple[bool, Any]:
    """(ok, value as the builder gets it): an int passes for a float, a bool for nothing but a bool."""
    if kind == "bool":
        return isinstance(value, bool), value
    if isinstance(value, bool):
        return False, value
    if kind == "int":
        return isinstance(value, int), value
    if kind == "float":
        ok = isinstance(value, int | float) and math.isfinite(value)
        return ok, float(value) if ok else value
    if kind == "str":
        return isinstance(value, str), value
    return False, value


def _value(spec: dict, value: Any) -> tuple[bool, Any]:
    if value is None:
        return bool(spec.get("nullable")), None
    kind = spec["type"]
    if kind.startswith("list[") and kind.endswith("]"):
        if not isinstance(value, list):
            return False, value
        items = [_scalar(kind[5:-1], item) for item in value]
        return all(ok for ok, _ in items), [item for _, item in items]
    ok, value = _scalar(kind, value)
    if ok and spec.get("choices") and value not in spec["choices"]:
        return False, value
    return ok, value


def model_args_check(arguments: dict[str, dict], given: dict, *, model: str) -> tuple[dict, list[str]]:
    """``given`` checked against ``arguments`` (a builder's schema): the values as the
    builder gets them (ints given for floats become floats; defaults are not filled in,
    so a job stores what its owner wrote), and one message per bad argument, each
    starting with the argument's name."""
    errors: list[str] = []
    cleaned: dict = {}
    takes = ", ".join(sorted(arguments)) or "no arguments"
    for name in sorted(given):
        if name not in arguments:
            errors.append(f"'{name}': unknown argument; {model} takes {takes}.")
    for name, spec in sorted(arguments.items()):
        if name not in given:
            if spec.get("required"):
                errors.append(f"'{name}': required by {model} ({type_shown(spec)}).")
            continue
        ok, value = _value(spec, given[name])
        if ok:
            cleaned[name] = value
        else:
            errors.append(f"'{name}': {model} takes {type_shown(spec)}, not {given[name]!r}.")
    return cleaned, errors
