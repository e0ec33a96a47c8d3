"""Early stopping on a job's own validation metric (the spec's ``early_stopping``).

Keras's rule: an evaluation improves on the best so far when it beats it by more than
``min_delta`` (higher for val_accuracy, lower for val_loss); the job stops once
``patience`` evaluations in a row have not. Counted in evaluations, not epochs: with
``eval_every`` 2 and ``patience`` 3 the job goes 6 epochs without improving.

Pure functions over the history of evaluations; ``jobs.services.epochs`` feeds them
from the database and ends the job.
"""

from __future__ import annotations

from collections.abc import Sequence

MODES = {"val_accuracy": "max", "val_loss": "min"}
DEFAULTS = {"metric": "val_accuracy", "patience": 3, "min_delta": 0.0}


def stop_reason(history: Sequence[tuple[int, float]], *, metric: str, patience: int, min_delta: float) -> str | None:
    """Why the job stops after the last of ``history`` ((epoch, value) per evaluation, in
    epoch order), or None when it goes on."""
    if metric not in MODES:
        raise ValueError(f"unknown early-stopping metric {metric!r}; choose one of {', '.join(MODES)}")
    higher = MODES[metric] == "max"
    best: float | None = None
    best_epoch, waited = 0, 0
    for epoch, value in history:
        improved = best is None or (value - min_delta > best if higher else value + min_delta < best)
        if improved:
            best, best_epoch, waited = value, epoch, 0
        else:
            waited += 1
    if best is None or waited < patience:
        return None
    return (
        f"{metric} did not improve by {min_delta:g} for {patience} evaluation{'s' if patience != 1 else ''}; "
        f"best {best:.4f} at epoch {best_epoch}"
    )


def rule_of(spec: dict | None) -> dict | None:
    """A job's stored ``early_stopping`` with its defaults filled in; None when off."""
    if not spec:
        return None
    return {**DEFAULTS, **spec}
