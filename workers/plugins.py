"""The models this worker can build: builders registered under the entry-point group
``tensorfleet.models``, the built-in ones included (pyproject.toml), so there is one path.

A builder is ``build(input_shape: tuple[int, ...], num_classes: int, **model_args) ->
torch.nn.Module``. Its signature is the schema of ``model_args`` (``jobs.model_schemas``):
each argument after the first two, with its annotation (``int``, ``float``, ``bool``,
``str``, ``list[...]`` of those, ``X | None``, ``Literal[...]``) and its default. An
argument of another type that has a default is not settable from a spec; one without
a default keeps the builder out. The input it takes is its ``input_kind`` attribute:
``"images"`` (channels, height, width), ``"tabular"`` (features) or ``"any"`` (the default).

A plugin that fails to load, or whose builder breaks these rules, is left out with a
warning in the worker's log; the worker goes on with the others. Nothing here imports
torch until a model is built: the workers app loads this module in every process.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import re
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Literal

from jobs.model_schemas import SCALAR_TYPES, model_args_check

logger = logging.getLogger(__name__)

GROUP = "tensorfleet.models"
INPUT_KINDS = ("images", "tabular", "any")
PROJECT = "tensorfleet"  # the distribution that registers the built-ins
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")  # fits Job.model_type
_SCALARS: dict[Any, str] = {int: "int", float: "float", bool: "bool", str: "str"}


class UnknownModel(ValueError):
    """No builder of that name is registered in this process."""


class ModelArgsInvalid(ValueError):
    """A job's ``model_args`` do not fit its builder's signature."""


class BuilderInvalid(TypeError):
    """A registered object cannot be a builder (its signature or its annotations)."""


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Callable[..., Any]
    arguments: dict[str, dict]
    input_kind: str
    description: str
    source: str  # "distribution version: module:object"

    def offer(self) -> dict:
        """What a worker publishes about it (jobs.services.architectures.offers_publish)."""
        return {
            "name": self.name,
            "arguments": self.arguments,
            "input_kind": self.input_kind,
            "description": self.description,
            "source": self.source,
        }


def _type_name(hint: Any) -> tuple[str | None, list | None]:
    """The schema type of an annotation (None: not one a spec can write), and a Literal's choices."""
    if hint in _SCALARS:
        return _SCALARS[hint], None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal and args and len({type(a) for a in args}) == 1 and type(args[0]) in _SCALARS:
        return _SCALARS[type(args[0])], list(args)
    if origin in (list, tuple, Sequence) and args and args[0] in _SCALARS:
        if origin is not tuple or len(args) == 1 or (len(args) == 2 and args[1] is Ellipsis):
            return f"list[{_SCALARS[args[0]]}]", None
    return None, None


def _argument(param: inspect.Parameter, hint: Any) -> dict | None:
    """One argument's schema, or None when a job spec cannot give it."""
    default = None if param.default is inspect.Parameter.empty else param.default
    required = param.default is inspect.Parameter.empty
    nullable = default is None and not required
    if hint is None and not required and type(default) in _SCALARS:
        hint = type(default)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(rest) != 1:
            return None
        hint, nullable = rest[0], True
    kind, choices = _type_name(hint)
    if kind is None or param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
        return None
    if isinstance(default, tuple):
        default = list(default)
    try:
        json.dumps(default)
    except (TypeError, ValueError):
        return None
    spec: dict = {"type": kind, "default": default, "required": required}
    if nullable:
        spec["nullable"] = True
    if choices:
        spec["choices"] = choices
    return spec


def describe(builder: Callable[..., Any]) -> tuple[dict[str, dict], str, str]:
    """(arguments, input kind, description) of a builder; BuilderInvalid if it cannot be one."""
    if not callable(builder):
        raise BuilderInvalid(f"{builder!r} is not callable")
    try:
        params = list(inspect.signature(builder).parameters.values())
        hints = typing.get_type_hints(builder)
    except (TypeError, ValueError, NameError) as exc:
        raise BuilderInvalid(f"its signature cannot be read: {exc}") from None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    if len(params) < 2 or any(p.kind not in positional for p in params[:2]):
        raise BuilderInvalid("a builder takes (input_shape, num_classes, **model_args)")
    arguments = {}
    for param in params[2:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        spec = _argument(param, hints.get(param.name))
        if spec is not None:
            arguments[param.name] = spec
        elif param.default is inspect.Parameter.empty:
            raise BuilderInvalid(f"argument {param.name!r} has no default and is not one of {', '.join(SCALAR_TYPES)}")
    kind = getattr(builder, "input_kind", "any")
    if kind not in INPUT_KINDS:
        raise BuilderInvalid(f"input_kind {kind!r} is not one of {', '.join(INPUT_KINDS)}")
    doc = (inspect.getdoc(builder) or "").split("\n\n")[0]
    return arguments, kind, " ".join(doc.split())[:500]


def _source(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}: {ep.value}" if dist is not None else ep.value


def _ours_first(ep: EntryPoint) -> tuple:
    dist = getattr(ep, "dist", None)
    return (ep.name, getattr(dist, "name", "") != PROJECT, ep.value)


@functools.cache
def _load() -> tuple[dict[str, Entry], tuple[str, ...]]:
    entries: dict[str, Entry] = {}
    problems: list[str] = []
    for ep in sorted(entry_points(group=GROUP), key=_ours_first):
        if not NAME.fullmatch(ep.name):
            problems.append(f"{ep.name!r} ({ep.value}): a model name is 1-32 letters, digits, '_', '.', '-'")
            continue
        if ep.name in entries:
            problems.append(f"{ep.name!r} is registered twice: {entries[ep.name].source} kept, {_source(ep)} left out")
            continue
        try:
            builder = ep.load()
            arguments, kind, description = describe(builder)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not stop the worker
            problems.append(f"{ep.name!r} ({_source(ep)}) left out: {type(exc).__name__}: {exc}")
            continue
        entries[ep.name] = Entry(ep.name, builder, arguments, kind, description, _source(ep))
    for problem in problems:
        logger.warning("model plugins: %s", problem)
    if not entries:
        logger.warning("model plugins: no model registered under %r; install the project (make setup)", GROUP)
    return entries, tuple(problems)


def entries() -> dict[str, Entry]:
    """Every model this process can build, by name (loaded once per process)."""
    return _load()[0]


def problems() -> tuple[str, ...]:
    """Why registered models were left out, one line each."""
    return _load()[1]


def reload() -> None:
    """Forget what was loaded (a test that installs or registers a plugin)."""
    _load.cache_clear()


def get(name: str) -> Entry:
    try:
        return entries()[name]
    except KeyError:
        known = ", ".join(sorted(entries())) or "none (is the project installed? make setup)"
        raise UnknownModel(f"unknown model {name!r}; this worker builds {known}") from None


def offers() -> list[dict]:
    """What this process can build, as a worker publishes it."""
    return [entry.offer() for _, entry in sorted(entries().items())]


def build(name: str, input_shape: Sequence[int], num_classes: int, model_args: dict | None = None):
    """A new ``name`` for this input and class count, ``model_args`` checked against its
    signature first (ModelArgsInvalid names the argument). Seed torch's RNG before."""
    entry = get(name)
    cleaned, errors = model_args_check(entry.arguments, dict(model_args or {}), model=name)
    if errors:
        raise ModelArgsInvalid(" ".join(errors))
    model = entry.builder(tuple(int(d) for d in input_shape), int(num_classes), **cleaned)
    from torch import nn  # here, not above: processes that never build keep torch unloaded

    if not isinstance(model, nn.Module):
        raise BuilderInvalid(f"{name} ({entry.source}) built a {type(model).__name__}, not a torch.nn.Module")
    return model
