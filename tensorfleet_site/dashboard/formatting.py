"""How the dashboard writes numbers, times and states: one function per kind of value,
plain Python (no Django), used by the template filters (templatetags/tf_format.py) and
the pages' JSON alike. ``None`` is written as an en dash everywhere."""

from __future__ import annotations

import math

from jobs.services.sweeps import EARLY_STOPPED

NONE = "–"
SIZE_UNITS = ("B", "kB", "MB", "GB", "TB")


def _missing(value) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def duration(seconds) -> str:
    """0.42 -> "0.4s", 12.3 -> "12s", 92 -> "1m 32s", 7384 -> "2h 03m", 90000 -> "1d 01h"."""
    if _missing(seconds):
        return NONE
    s = max(0.0, float(seconds))
    if s < 10:
        return f"{s:.1f}s"
    whole = round(s)
    if whole < 60:
        return f"{whole}s"
    minutes, sec = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def accuracy(value) -> str:
    """A fraction as a percentage with one decimal: 0.97222 -> "97.2 %"."""
    if _missing(value):
        return NONE
    return f"{float(value) * 100:.1f} %"


def loss(value) -> str:
    """Four decimals, or four significant digits where that would show zeros: 0.01234 -> "0.0123"."""
    if _missing(value):
        return NONE
    x = float(value)
    if x != 0 and abs(x) < 0.001:
        return f"{x:.3e}"
    return f"{x:.4f}"


def size(num_bytes) -> str:
    """Bytes in SI units: 512 -> "512 B", 1536 -> "1.5 kB", 12_345_678 -> "12.3 MB"."""
    if _missing(num_bytes):
        return NONE
    n = float(num_bytes)
    unit = 0
    while abs(n) >= 1000 and unit < len(SIZE_UNITS) - 1:
        n /= 1000
        unit += 1
    return f"{int(n)} B" if unit == 0 else f"{n:.1f} {SIZE_UNITS[unit]}"


def rate(value) -> str:
    """Samples per second, grouped: 12345.6 -> "12,346/s"."""
    if _missing(value):
        return NONE
    return f"{float(value):,.0f}/s"


def number(value) -> str:
    """A hyperparameter as written: integers as they are, floats to four significant digits."""
    if _missing(value):
        return NONE
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}"


def status_label(job) -> str:
    """What a job's state is called on the pages: an early-stopped trial (cancelled by ASHA,
    ``error == "early-stopped"``) or job (succeeded with a ``stop_reason``) says so instead
    of "cancelled" or "succeeded"."""
    status = getattr(job, "status", None) or (job.get("status") if isinstance(job, dict) else "")
    error = getattr(job, "error", None) if not isinstance(job, dict) else job.get("error", job.get("reason"))
    stop_reason = getattr(job, "stop_reason", None) if not isinstance(job, dict) else job.get("stop_reason")
    if status == "cancelled" and error == EARLY_STOPPED:
        return "early-stopped"
    if status == "succeeded" and stop_reason:
        return "stopped early"
    return status or ""


def status_class(job) -> str:
    """The CSS class of the state's badge (early stops are not the yellow of a cancel)."""
    label = status_label(job)
    return "early" if label in ("early-stopped", "stopped early") else label
