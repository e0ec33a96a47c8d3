"""A sweep's parallel-coordinates plot, laid out in plain Python for an inline SVG: one
vertical axis per searched parameter and a last one for the metric, one line per trial
through its values. Choices sit evenly spaced in the order the space lists them, ranges
scale linearly (log_uniform: logarithmically) between their bounds, the metric between
the lowest and highest seen. Lines are coloured from poor (orange) to good (blue) by the
sweep's mode; the best trial is drawn thick and last."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from jobs.search_space import Param, parse_space

WIDTH, HEIGHT = 720, 300
TOP, BOTTOM, LEFT, RIGHT = 24, 40, 48, 56
TICKS = 3


@dataclass(frozen=True)
class Trial:
    number: int
    params: dict
    metric: float | None
    best: bool = False
    href: str = ""


def _key(value) -> str:
    return json.dumps(value, sort_keys=True)


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    text = str(value)
    return text if len(text) <= 12 else text[:11] + "…"


class _Axis:
    def __init__(self, name: str, param: Param | None, low: float = 0.0, high: float = 1.0):
        self.name, self.param = name, param
        self.kind = param.kind if param else "metric"
        self.low, self.high = low, high
        if self.kind in ("uniform", "int_uniform", "log_uniform"):
            self.low, self.high = (float(v) for v in param.values)  # type: ignore[union-attr]
        self.log = self.kind == "log_uniform" and self.low > 0

    def fraction(self, value) -> float | None:
        """0 at the bottom, 1 at the top; None for a value the axis cannot place."""
        if self.kind in ("choice", "fixed"):
            keys = [_key(v) for v in self.param.values]  # type: ignore[union-attr]
            if _key(value) not in keys:
                return None
            return 0.5 if len(keys) == 1 else keys.index(_key(value)) / (len(keys) - 1)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        low, high, x = self.low, self.high, float(value)
        if self.log:
            if x <= 0:
                return None
            low, high, x = math.log(low), math.log(high), math.log(x)
        if high == low:
            return 0.5
        return min(1.0, max(0.0, (x - low) / (high - low)))

    def ticks(self) -> list[tuple[float, str]]:
        if self.kind in ("choice", "fixed"):
            values = self.param.values  # type: ignore[union-attr]
            step = max(1, math.ceil(len(values) / 8))  # at most about 8 labels
            return [(self.fraction(v) or 0.0, _short(v)) for v in values[::step]]
        out = []
        for i in range(TICKS):
            f = i / (TICKS - 1)
            if self.log:
                v = math.exp(math.log(self.low) + f * (math.log(self.high) - math.log(self.low)))
            else:
                v = self.low + f * (self.high - self.low)
            out.append((f, _short(int(round(v)) if self.kind == "int_uniform" else float(v))))
        return out


def _colour(goodness: float) -> str:
    """0: orange (poor) .. 1: blue (good)."""
    poor, good = (234, 88, 12), (37, 99, 235)
    r, g, b = (round(p + (q - p) * goodness) for p, q in zip(poor, good, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def plot(space: dict, trials: list[Trial], *, metric: str, mode: str) -> dict:
    """The SVG's geometry: axes (x, name, ticks at y) and lines (points, colour, title)."""
    params = {name: p for name, p in parse_space(space).items() if not (p.kind == "fixed")}
    metrics = [t.metric for t in trials if t.metric is not None and math.isfinite(t.metric)]
    low, high = (min(metrics), max(metrics)) if metrics else (0.0, 1.0)
    axes = [_Axis(name, p) for name, p in sorted(params.items())] + [_Axis(metric, None, low, high)]
    span = (WIDTH - LEFT - RIGHT) / max(1, len(axes) - 1)
    xs = [LEFT + i * span if len(axes) > 1 else WIDTH / 2 for i in range(len(axes))]

    def y(fraction: float) -> float:
        return round(TOP + (1 - fraction) * (HEIGHT - TOP - BOTTOM), 1)

    lines = []
    for trial in sorted(trials, key=lambda t: (t.best, t.metric is not None)):
        points = []
        for x, axis in zip(xs, axes, strict=True):
            value = trial.metric if axis.kind == "metric" else trial.params.get(axis.name)
            fraction = axis.fraction(value) if value is not None else None
            if fraction is not None:
                points.append(f"{round(x, 1)},{y(fraction)}")
        if trial.metric is None:
            colour = "#9ca3af"
        else:
            norm = axes[-1].fraction(trial.metric) or 0.0
            colour = _colour(norm if mode == "max" else 1 - norm)
        values = ", ".join(f"{k}={_short(v)}" for k, v in sorted(trial.params.items()) if k in params)
        shown = "no metric yet" if trial.metric is None else f"{metric} {trial.metric:.4g}"
        lines.append(
            {
                "points": " ".join(points),
                "colour": colour,
                "best": trial.best,
                "pending": trial.metric is None,
                "href": trial.href,
                "title": f"trial {trial.number}: {values}; {shown}",
            }
        )
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "axis_top": TOP,
        "axis_bottom": HEIGHT - BOTTOM,
        "label_y": HEIGHT - BOTTOM + 18,
        "axes": [
            {"x": round(x, 1), "name": a.name, "ticks": [{"y": y(f), "label": label} for f, label in a.ticks()]}
            for x, a in zip(xs, axes, strict=True)
        ],
        "lines": lines,
    }
