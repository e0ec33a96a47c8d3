"""Search spaces of hyperparameter sweeps: their syntax, validation and seeded sampling.

A space maps a job field to what the trials try for it::

    {"learning_rate": {"log_uniform": [1e-4, 1e-1]},   # log-uniform in [low, high)
     "momentum": {"uniform": [0.0, 0.9]},               # uniform in [low, high)
     "num_workers": {"int_uniform": [1, 4]},            # an integer in [low, high], both included
     "batch_size": {"choice": [16, 32, 64]},            # one of the values
     "optimizer": "sgd"}                                # a fixed value

Random search samples trial ``n`` from its own generator seeded by (sweep seed, n), so
the same space and seed give the same trials, in any order and on any machine. Grid
search takes the cartesian product of the ``choice`` lists and fixed values, in the
order the values are listed, with fields in alphabetical order.
Model-based search (``tpe``) proposes each trial from the results of the trials before
it (jobs/tpe.py); ``trial_point`` stands in for it with random points where no results
exist yet, in the sweep's validation.

Every check here takes time linear in the space as written (its fields and listed
values), never in the number of points of a grid: a grid's size is a product that stops
multiplying once it passes the limit, and nothing enumerates the points to check them.

Pure functions: no database, no Django.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

DISTRIBUTIONS = ("choice", "uniform", "log_uniform", "int_uniform")
CONTINUOUS = ("uniform", "log_uniform", "int_uniform")


class SpaceError(Exception):
    """A space that cannot be searched; ``errors`` maps a field to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Param:
    kind: str  # one of DISTRIBUTIONS, or "fixed"
    values: tuple  # choice: the options; uniform & co: (low, high); fixed: (value,)

    def extremes(self) -> list:
        """The values that bound what sampling can give: every option, or both ends."""
        if self.kind == "int_uniform":
            return [int(v) for v in self.values]
        return list(self.values)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def parse_param(spec: Any, *, max_values: int | None = None) -> Param:
    """One field's entry; ValueError with a readable message when it is malformed or
    when a choice lists more than ``max_values`` values."""
    if isinstance(spec, dict):
        if len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
            keys = sorted(map(str, spec))
            shown = ", ".join(keys[:10]) + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")
            raise ValueError(
                f'Expected one of {", ".join(DISTRIBUTIONS)} (e.g. {{"choice": [16, 32]}}) or a fixed value; '
                f"got keys {shown or 'none'}."
            )
        kind, arg = next(iter(spec.items()))
        if kind == "choice":
            if not isinstance(arg, list) or not arg:
                raise ValueError("choice needs a non-empty list of values.")
            if max_values is not None and len(arg) > max_values:
                raise ValueError(f"choice lists {len(arg)} values; the limit is {max_values}.")
            if any(isinstance(v, dict | list) for v in arg):
                raise ValueError("choice values must be plain values (numbers, strings, booleans).")
            return Param("choice", tuple(arg))
        if not isinstance(arg, list) or len(arg) != 2 or not all(_is_number(v) for v in arg):
            raise ValueError(f"{kind} needs [low, high], two numbers.")
        low, high = arg
        if kind == "int_uniform":
            if not all(float(v).is_integer() for v in arg):
                raise ValueError("int_uniform needs two integers.")
            if low > high:
                raise ValueError(f"int_uniform range [{low}, {high}] is inverted: low must not exceed high.")
            return Param(kind, (int(low), int(high)))
        if low > high:
            raise ValueError(f"{kind} range [{low}, {high}] is inverted: low must be below high.")
        if low == high:
            raise ValueError(f"{kind} range [{low}, {high}] is empty: low must be below high.")
        if kind == "log_uniform" and low <= 0:
            raise ValueError(f"log_uniform needs low > 0; got {low}.")
        return Param(kind, (low, high))
    if isinstance(spec, list):
        sample = spec if len(spec) <= 10 else [*spec[:3], "..."]  # a long list is not echoed back whole
        raise ValueError(f'A list is ambiguous; to search these values write {{"choice": {sample}}}.')
    return Param("fixed", (spec,))


def parse_space(space: Any, *, max_params: int | None = None, max_values: int | None = None) -> dict[str, Param]:
    """Every field's entry parsed, or SpaceError with a message per bad field. With limits,
    a space of more than ``max_params`` fields is refused before any entry is read, and a
    choice of more than ``max_values`` values before its values are."""
    if not isinstance(space, dict) or not space:
        raise SpaceError({"space": ["Expected a non-empty JSON object: field -> distribution or value."]})
    if max_params is not None and len(space) > max_params:
        raise SpaceError({"space": [f"{len(space)} fields are searched; the limit is {max_params}."]})
    params, errors = {}, {}
    for field in sorted(space):
        try:
            params[field] = parse_param(space[field], max_values=max_values)
        except ValueError as exc:
            errors[field] = [str(exc)]
    if errors:
        raise SpaceError(errors)
    return params


def grid_size(params: dict[str, Param], *, limit: int | None = None) -> int | None:
    """The number of points of the grid; None when it passes ``limit``, known as soon as a
    partial product does (the rest is not multiplied)."""
    size = 1
    for p in params.values():
        size *= len(p.values)
        if limit is not None and size > limit:
            return None
    return size


def value_key(value: Any) -> tuple:
    """A key under which two values a job field reads alike are equal (1 and 1.0) and
    values it reads differently are not (1 and True, 1 and "1")."""
    return (type(value) is bool, type(value) is str, value)


def grid_check(params: dict[str, Param]) -> None:
    """A grid takes choice lists and fixed values only, each value listed once (a value
    listed twice would train the same trial twice)."""
    errors = {}
    for field, p in params.items():
        if p.kind in CONTINUOUS:
            errors[field] = [
                f"grid search takes only choice lists and fixed values; {p.kind} is continuous (use random search)."
            ]
            continue
        seen: set[tuple] = set()
        for value in p.values:
            key = value_key(value)
            if key in seen:
                errors[field] = [f"{value!r} is listed twice: the grid would train the same trial twice."]
                break
            seen.add(key)
    if errors:
        raise SpaceError(errors)


def grid_point(params: dict[str, Param], index: int) -> dict[str, Any]:
    """The ``index``-th point (0-based) of the grid: the last field varies fastest."""
    size = grid_size(params) or 0  # no limit given: never None
    if not 0 <= index < size:
        raise IndexError(f"grid point {index} of {size}")
    point = {}
    for field in sorted(params, reverse=True):  # mixed radix, as itertools.product orders them
        values = params[field].values
        index, digit = divmod(index, len(values))
        point[field] = values[digit]
    return dict(sorted(point.items()))


def random_point(params: dict[str, Param], *, seed: int, index: int) -> dict[str, Any]:
    """Trial ``index``'s values, from a generator of its own seeded by (seed, index)."""
    rng = random.Random(f"tensorfleet-sweep:{seed}:{index}")  # str seeds hash with sha512: stable everywhere
    point = {}
    for field in sorted(params):
        p = params[field]
        if p.kind == "fixed":
            point[field] = p.values[0]
        elif p.kind == "choice":
            point[field] = p.values[rng.randrange(len(p.values))]
        elif p.kind == "int_uniform":
            point[field] = rng.randint(*p.values)
        elif p.kind == "uniform":
            low, high = p.values
            point[field] = low + (high - low) * rng.random()
        else:  # log_uniform
            low, high = math.log(p.values[0]), math.log(p.values[1])
            point[field] = math.exp(low + (high - low) * rng.random())
    return point


def trial_point(params: dict[str, Param], *, search: str, seed: int, index: int) -> dict[str, Any]:
    """The values of trial ``index`` (0-based) for the given search (``tpe``: a random point,
    as TPE's own first trials are; the scheduler asks jobs/tpe.py with the results so far)."""
    if search == "grid":
        return grid_point(params, index)
    return random_point(params, seed=seed, index=index)
