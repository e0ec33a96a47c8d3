"""Asynchronous successive halving (ASHA, Li et al. 2018), the stopping variant.

Rungs sit at ``grace_epochs * reduction_factor**k`` epochs (below the trial's last
epoch). When a trial records a rung epoch, it goes on only if its metric there is
among the top ``1/reduction_factor`` of every trial that has reached that rung so far;
otherwise it stops. Asynchronous: nobody waits for a rung to fill up, the decision is
made with what is known, and while fewer than ``reduction_factor`` trials have reached
a rung every trial goes on. Early trials are judged against few, later ones against many.

Pure functions over a metrics table; jobs/sweeps.py feeds them from the database.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass


def rungs(*, grace_epochs: int, reduction_factor: int, max_epochs: int) -> list[int]:
    """The epochs at which a trial of ``max_epochs`` epochs is judged."""
    if grace_epochs < 1 or reduction_factor < 2:
        raise ValueError("grace_epochs must be >= 1 and reduction_factor >= 2")
    out, rung = [], grace_epochs
    while rung < max_epochs:
        out.append(rung)
        rung *= reduction_factor
    return out


def score(value: float | None, mode: str) -> float:
    """Bigger is better; a NaN (a diverged trial) is the worst of all."""
    if value is None or math.isnan(value):
        return -math.inf
    return value if mode == "max" else -value


@dataclass(frozen=True)
class Decision:
    keep_going: bool
    rung: int | None = None  # the rung epoch judged, None when the epoch is not a rung
    reached: int = 0  # trials recorded at the rung, this one included
    cutoff: float | None = None  # the worst metric still kept, when the rung was full enough to judge

    def __str__(self) -> str:
        if self.rung is None:
            return "not a rung"
        if self.cutoff is None:
            return f"rung {self.rung}: {self.reached} trial(s) so far, too few to judge"
        verb = "continues" if self.keep_going else "stopped"
        return f"rung {self.rung}: {verb}, cutoff {self.cutoff:.6g} over {self.reached} trials"


def rung_decision(*, value: float, rung_values: Sequence[float], reduction_factor: int, mode: str) -> Decision:
    """Judge ``value`` against ``rung_values`` (every trial recorded at the rung, this one included)."""
    reached = len(rung_values)
    if reached < reduction_factor:
        return Decision(keep_going=True, reached=reached)
    keep = reached // reduction_factor
    ranked = sorted((score(v, mode) for v in rung_values), reverse=True)
    cutoff = ranked[keep - 1]
    own = score(value, mode)
    keep_going = own >= cutoff and own != -math.inf
    shown = math.nan if cutoff == -math.inf else (cutoff if mode == "max" else -cutoff)
    return Decision(keep_going=keep_going, reached=reached, cutoff=shown)


def decide(
    *,
    trial: Hashable,
    epoch: int,
    table: Mapping[Hashable, Mapping[int, float]],
    grace_epochs: int,
    reduction_factor: int,
    max_epochs: int,
    mode: str,
) -> Decision:
    """Whether ``trial`` goes on after recording ``epoch``.

    ``table`` maps each trial of the sweep to its metric per recorded epoch (only the
    rung epochs matter); ``max_epochs`` is this trial's epoch count.
    """
    if epoch not in rungs(grace_epochs=grace_epochs, reduction_factor=reduction_factor, max_epochs=max_epochs):
        return Decision(keep_going=True)
    value = table[trial][epoch]
    rung_values = [metrics[epoch] for metrics in table.values() if epoch in metrics]
    decision = rung_decision(value=value, rung_values=rung_values, reduction_factor=reduction_factor, mode=mode)
    return Decision(keep_going=decision.keep_going, rung=epoch, reached=decision.reached, cutoff=decision.cutoff)
