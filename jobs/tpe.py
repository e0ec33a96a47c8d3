"""Model-based search for sweeps (``search: "tpe"``): Optuna's tree-structured Parzen
estimator proposes each trial from the results of the trials before it.

Nothing of Optuna is stored. Each time the scheduler plans a trial it builds an
in-memory study from the sweep's trials so far (``Observed``: the values each tried, how
it ended and its metric), asks it for one point, and drops it. The sampler is seeded from
(sweep seed, trial number), so the same history gives the same point on any machine; a
sweep run one trial at a time (``max_concurrent: 1``) is reproducible end to end. With
more at once, which trials have ended when the next is planned depends on timing: the
running ones are given to the sampler as running (Optuna's constant liar keeps it from
proposing their points again).

How trials count: a finished trial is complete with its metric at its last epoch; one
ASHA stopped (``early-stopped``) is pruned, with the metric of each epoch it recorded,
which TPE ranks below the complete ones; a failed or cancelled trial only tells TPE
that the point was tried. ASHA stays the early-stopping rule: TPE only proposes.

Pure functions: no database, no Django.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.samplers import TPESampler
from optuna.trial import TrialState, create_trial

from jobs.search_space import Param, value_key

optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created in memory" per trial planned

COMPLETE, PRUNED, FAILED, RUNNING = "complete", "pruned", "failed", "running"
_STATES = {
    COMPLETE: TrialState.COMPLETE,
    PRUNED: TrialState.PRUNED,
    FAILED: TrialState.FAIL,
    RUNNING: TrialState.RUNNING,
}


@dataclass(frozen=True)
class Observed:
    """One earlier trial as the sampler sees it."""

    values: dict[str, Any]
    state: str  # COMPLETE, PRUNED, FAILED or RUNNING
    metric: float | None = None  # COMPLETE: its final metric
    curve: dict[int, float] = field(default_factory=dict)  # PRUNED: epoch -> metric


def startup_trials(max_trials: int) -> int:
    """Trials sampled at random before TPE models the results: a quarter of the budget,
    3 to 10 (Optuna's default is 10, too many for a budget of 20)."""
    return max(3, min(10, max_trials // 4))


def sampler_seed(seed: int, index: int) -> int:
    digest = hashlib.sha256(f"tensorfleet-tpe:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _distribution(param: Param) -> BaseDistribution:
    if param.kind == "choice":
        return CategoricalDistribution(list(param.values))
    if param.kind == "int_uniform":
        return IntDistribution(int(param.values[0]), int(param.values[1]))
    low, high = (float(v) for v in param.values)
    return FloatDistribution(low, high, log=param.kind == "log_uniform")


def _as_sampled(value: Any, param: Param, distribution: BaseDistribution) -> Any:
    """A trial's value as the distribution holds it (a choice as listed), or None when
    it is not one of the space's (a dataset resolved to another spelling)."""
    if param.kind == "choice":
        listed = {value_key(v): v for v in param.values}
        return listed.get(value_key(value))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = int(value) if param.kind == "int_uniform" else float(value)
    return value if distribution._contains(distribution.to_internal_repr(value)) else None


def _trial(observed: Observed, params: dict[str, Param], distributions: dict[str, BaseDistribution]):
    values = {}
    for name, distribution in distributions.items():
        value = _as_sampled(observed.values.get(name), params[name], distribution)
        if value is None:
            return None
        values[name] = value
    state = observed.state if observed.metric is not None or observed.state in (FAILED, RUNNING) else FAILED
    if state == PRUNED and not observed.curve:
        state = FAILED
    return create_trial(
        state=_STATES[state],
        params=values,
        distributions=distributions,
        value=observed.metric if state == COMPLETE else None,
        intermediate_values=dict(observed.curve) if state == PRUNED else None,
    )


def tpe_point(
    params: dict[str, Param], *, seed: int, index: int, history: list[Observed], mode: str, max_trials: int
) -> dict[str, Any]:
    """The values of trial ``index`` (0-based), proposed by TPE from ``history`` (the
    trials before it, in trial order). The same arguments give the same point."""
    distributions = {name: _distribution(p) for name, p in sorted(params.items()) if p.kind != "fixed"}
    point = {name: p.values[0] for name, p in params.items() if p.kind == "fixed"}
    if distributions:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = TPESampler(
                seed=sampler_seed(seed, index), n_startup_trials=startup_trials(max_trials), constant_liar=True
            )
            study = optuna.create_study(direction="maximize" if mode == "max" else "minimize", sampler=sampler)
            for observed in history:
                trial = _trial(observed, params, distributions)
                if trial is not None:
                    study.add_trial(trial)
            point.update(study.ask(distributions).params)
    return dict(sorted(point.items()))
