"""BENCHMARKS.md from the measurements of ``manage.py benchmark``."""

from __future__ import annotations

import os
import platform
import statistics
from datetime import date
from pathlib import Path


def med(xs):
    return statistics.median(xs)


def spread(xs, fmt="{:.2f}"):
    return f"{fmt.format(med(xs))} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"


def render_report(results: dict, *, cores: int, repeat: int, targets: dict, repo: Path) -> str:
    lines = _header(cores, repeat)
    verdicts: list[tuple] = []
    parts = [_training(results, targets), _orchestration(results)]
    if "rounds_accuracy" in results:
        parts.append(_rounds_accuracy(results))
    if "many_jobs" in results:
        parts.append(_many_jobs(results["many_jobs"]))
    if "reconciler" in results:
        parts.append(_reconciler(results["reconciler"]))
    if "api" in results:
        parts.append(_api(results["api"]))
    for part_lines, part_verdicts in parts:
        lines += part_lines
        verdicts += part_verdicts
    lines += ["", "## Targets", "", "| target | measured | goal | holds |", "| --- | --- | --- | --- |"]
    lines += [f"| {t} | {m} | {g} | {'yes' if ok else '**no**'} |" for t, m, g, ok in verdicts]
    findings = repo / "docs" / "PERFORMANCE.md"
    if findings.exists():
        lines += ["", findings.read_text().strip()]
    return "\n".join(lines) + "\n"


def _header(cores: int, repeat: int) -> list[str]:
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    lines = [
        "# Benchmarks",
        "",
        f"Measured {date.today().isoformat()} on {platform.machine()} Linux, {cores} cores, {mem_gib:.0f} GiB, "
        f"Python {platform.python_version()}, torch {__import__('torch').__version__}, by",
        f"`make bench` (`python manage.py benchmark --repeat {repeat}`). Medians with (min–max) of "
        f"{repeat} interleaved repetitions; ratios are of medians measured in this one run.",
        "",
        "The platform's time is REST submit to `succeeded` by the server's clock (job row created to job row "
        "finished), with 2 workers already running and warm; the plain loops time training only (data made "
        "before the clock), as shared/bench/reference.py does.",
        "",
        "## Training: platform vs plain PyTorch",
        "",
        "| workload | plain single (s) | platform 1 shard (s) | ratio | plain average x2 (s) | platform 2 shards (s) | ratio | accuracy: plain / 1 shard / 2 shards | reference.py single / average (s, acc) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    return lines


def _training(results: dict, targets: dict) -> tuple[list[str], list[tuple]]:
    lines: list[str] = []
    verdicts = []
    for name, rows in results["workloads"].items():
        walls = {k: [r["wall_s"] for r in v] for k, v in rows.items()}
        acc = {k: med([r["val_accuracy"] for r in v]) for k, v in rows.items()}
        r1 = med(walls["1 shard"]) / med(walls["single"])
        r2 = med(walls["2 shards"]) / med(walls["average x2"])
        ref = results["reference"].get(name) or {}
        ref_txt = (
            f"{ref['single']['wall_s']:.2f} ({ref['single']['test_accuracy']:.3f}) / "
            f"{ref['average']['wall_s']:.2f} ({ref['average']['test_accuracy']:.3f})"
            if ref
            else "not found"
        )
        lines.append(
            f"| {name} | {spread(walls['single'])} | {spread(walls['1 shard'])} | **{r1:.2f}** | "
            f"{spread(walls['average x2'])} | {spread(walls['2 shards'])} | **{r2:.2f}** | "
            f"{acc['single']:.4f} / {acc['1 shard']:.4f} / {acc['2 shards']:.4f} | {ref_txt} |"
        )
        for label, ratio in (("1 shard / single", r1), ("2 shards / average x2", r2)):
            target = targets.get((name, label))
            if target:
                verdicts.append((f"{name} {label}", f"{ratio:.2f}", f"≤ {target}", ratio <= target))
        worst_acc = max(abs(acc["1 shard"] - acc["single"]), abs(acc["2 shards"] - acc["average x2"]))
        verdicts.append((f"{name} accuracy vs plain", f"{worst_acc:.4f}", "≤ 0.01", worst_acc <= 0.01))
    return lines, verdicts


def _orchestration(results: dict) -> tuple[list[str], list[tuple]]:
    lines: list[str] = []
    verdicts: list[tuple] = []
    d = results["dispatch"]
    over = [p - b for p, b in zip(d["platform_ms"], d["bare_ms"], strict=True)]
    lat = results["latency_ms"]
    lines += [
        "",
        "## Orchestration",
        "",
        "| measure | median (min–max) |",
        "| --- | --- |",
        f"| per task, platform (logreg/iris, 100 epochs x 10 shards), ms | {spread(d['platform_ms'])} |",
        f"| per task, bare Celery chord of no-ops (same shape, broker, workers), ms | {spread(d['bare_ms'])} |",
        f"| per-task overhead of the platform over the bare chord, ms | {spread(over)} |",
        f"| submit to first shard started, ms | {spread(lat, '{:.0f}')} |",
    ]
    verdicts.append(("per-task overhead", f"{med(over):.1f} ms", "≤ 10 ms", med(over) <= 10))
    if "rounds" in results:
        r = results["rounds"]
        per_round = [p - b for p, b in zip(r["platform_ms"], r["bare_ms"], strict=True)]
        lines += [
            f"| per round, platform ({r['rounds']} rounds of logreg/iris x {r['shards']} shards, nesterov), ms "
            f"| {spread(r['platform_ms'])} |",
            f"| per round, bare Celery chord of {r['shards']} no-ops, ms | {spread(r['bare_ms'])} |",
            f"| fixed orchestration cost per round over the bare chord, ms | {spread(per_round)} |",
        ]
        verdicts.append(("per-round overhead", f"{med(per_round):.1f} ms", "≤ 10 ms", med(per_round) <= 10))
    verdicts.append(("submit to first shard", f"{med(lat):.0f} ms", "≤ 200 ms", med(lat) <= 200))
    return lines, verdicts


def _api(a: dict) -> tuple[list[str], list[tuple]]:
    lines: list[str] = []
    verdicts: list[tuple] = []
    lines += ["", "## API (gunicorn, 2 workers x 4 threads, same machine as the load generator)", ""]
    lines += ["| request | requests/s | p50 ms | p99 ms |", "| --- | --- | --- | --- |"]
    g = a["get_job"]
    if g:
        lines.append(
            f"| GET /jobs/<id> (wrk, 8 connections, 10 s) | {g['rps']:.0f} | {g['p50_ms']:.1f} | {g['p99_ms']:.1f} |"
        )
        verdicts.append(("GET /jobs/<id> throughput", f"{g['rps']:.0f} rps", "≥ 500", g["rps"] >= 500))
        verdicts.append(("GET /jobs/<id> p99", f"{g['p99_ms']:.1f} ms", "≤ 50 ms", g["p99_ms"] <= 50))
    else:
        lines.append("| GET /jobs/<id> | wrk not installed (`apt-get install wrk`) | | |")
    p = a["post_job"]
    lines.append(f"| POST /jobs (4 threads, 5 s) | {p['rps']:.0f} | {p['p50_ms']:.1f} | {p['p99_ms']:.1f} |")
    lines.append(
        f"| GET /jobs, first page, {a['jobs_in_db']:,} jobs in the database | | {med(a['list_ms']):.1f} | {max(a['list_ms']):.1f} (max) |"
    )
    lines.append(
        f"| GET /jobs?page=500, {a['jobs_in_db']:,} jobs | | {med(a['list_page_500_ms']):.1f} | {max(a['list_page_500_ms']):.1f} (max) |"
    )
    verdicts.append(
        ("GET /jobs page with 100k jobs", f"{med(a['list_ms']):.1f} ms", "≤ 100 ms", med(a["list_ms"]) <= 100)
    )
    return lines, verdicts


def _reconciler(r: dict) -> tuple[list[str], list[tuple]]:
    s = r["seconds"]
    lines = [
        "",
        "## Reconciler",
        "",
        "| measure | median (min–max) |",
        "| --- | --- |",
        f"| one pass, {r['active_jobs']:,} running jobs (2 shards each), s | {spread(s, '{:.3f}')} |",
    ]
    return lines, [("reconciler pass at 3,000 active jobs", f"{med(s):.3f} s", "< 1 s", med(s) < 1.0)]


def _rounds_accuracy(results: dict) -> tuple[list[str], list[tuple]]:
    """Validation accuracy against shards, by outer optimizer and H, beside the plain loop."""
    lines = ["", "## Accuracy against shards: rounds and outer optimizers", ""]
    lines += [
        "Each job through the platform's own code in one process (tensorfleet_site/benchmark/rounds_accuracy.py:",
        "its rounds in order, shards then aggregate, as workers run them), same epochs as the plain loop.",
    ]
    verdicts = []
    rows = results["rounds_accuracy"]
    for name in dict.fromkeys(r["workload"] for r in rows):
        plain = results["workloads"].get(name, {}).get("single")
        plain_acc = med([r["val_accuracy"] for r in plain]) if plain else None
        shards = sorted({r["shards"] for r in rows if r["workload"] == name})
        lines += [
            "",
            f"**{name}** (plain single-process loop: "
            + (f"{plain_acc:.4f}" if plain_acc is not None else "not measured")
            + ")",
            "",
        ]
        lines += ["| outer optimizer, H | " + " | ".join(f"{k} shard{'s' if k > 1 else ''}" for k in shards) + " |"]
        lines += ["| --- |" + " --- |" * len(shards)]
        for label in dict.fromkeys(r["row"] for r in rows if r["workload"] == name):
            cells = {r["shards"]: r for r in rows if r["workload"] == name and r["row"] == label}
            lines.append(f"| {label} | " + " | ".join(f"{cells[k]['val_accuracy']:.4f}" for k in shards) + " |")
        if plain_acc is not None:
            best = max(r["val_accuracy"] for r in rows if r["workload"] == name and r["shards"] == max(shards))
            verdicts.append(
                (
                    f"{name} {max(shards)} shards vs single process (best row)",
                    f"{best - plain_acc:+.4f}",
                    "within 0.01",
                    plain_acc - best <= 0.01,
                )
            )
    return lines, verdicts


def _many_jobs(r: dict) -> tuple[list[str], list[tuple]]:
    lines = [
        "",
        "## Many jobs at once",
        "",
        f"{r['jobs']} one-epoch jobs (logreg on iris, 2 shards) submitted together from 8 threads, drained by the "
        f"fleet's 2 workers: {r['seconds']:.1f} s from the first created to the last finished, "
        f"**{r['jobs_per_s']:.1f} jobs/s**.",
    ]
    return lines, [("300 jobs drained", f"{r['jobs_per_s']:.1f} jobs/s", ">= 20 jobs/s", r["jobs_per_s"] >= 20)]
