"""`make bench`: the platform against plain PyTorch doing the same work, in one run.

Starts a fleet of its own (2 workers, embedded Redis, SQLite, local files), warms it,
then for each workload of shared/bench/reference.py times the plain loops and the
platform (REST submit to succeeded) several times, interleaved, and reports medians,
min and max, ratios and accuracy. Then dispatch overhead, submit latency and API
load. Results go to BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from datetime import date
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from workers import bench_plain, bench_platform

REPO = Path(__file__).resolve().parents[3]
TARGETS = {  # (workload, comparison) -> the largest ratio that passes
    ("synth-mlp", "1 shard / single"): 1.10,
    ("digits-cnn", "1 shard / single"): 1.25,
    ("synth-mlp", "2 shards / average x2"): 1.15,
}


def med(xs):
    return statistics.median(xs)


def spread(xs, fmt="{:.2f}"):
    return f"{fmt.format(med(xs))} ({fmt.format(min(xs))}–{fmt.format(max(xs))})"


class Command(BaseCommand):
    help = "Benchmark the platform against plain PyTorch loops; writes BENCHMARKS.md."

    def add_arguments(self, parser):
        parser.add_argument("--repeat", type=int, default=3, help="repetitions of each measurement (medians reported)")
        parser.add_argument("--workloads", default="digits-cnn,synth-mlp")
        parser.add_argument("--output", default=str(REPO / "BENCHMARKS.md"))
        parser.add_argument("--skip-api", action="store_true", help="skip the API load test")
        parser.add_argument("--jobs-in-db", type=int, default=100_000, help="jobs in the database for the list test")

    def handle(self, *args, **opts):
        names = [n.strip() for n in opts["workloads"].split(",") if n.strip()]
        unknown = [n for n in names if n not in bench_plain.WORKLOADS]
        if unknown:
            raise CommandError(f"--workloads: unknown {', '.join(unknown)} (have {', '.join(bench_plain.WORKLOADS)})")
        if opts["repeat"] < 1:
            raise CommandError("--repeat: must be at least 1")
        cores = os.cpu_count() or 1
        results: dict = {"workloads": {}, "reference": {}}
        self.say(f"machine: {cores} cores; starting a fleet of 2 workers ...")
        with bench_platform.Fleet(workers=2) as fleet:
            for name in names:
                w = bench_plain.WORKLOADS[name]
                self.say(f"{name}: warming the workers (data cached in each) ...")
                fleet.run_job({**w.spec(2, 1), "epochs": 1})
                fleet.run_job({**w.spec(1, cores), "epochs": 1})
                rows = {k: [] for k in ("single", "average x2", "1 shard", "2 shards")}
                for r in range(opts["repeat"]):
                    self.say(f"{name}: repetition {r + 1}/{opts['repeat']}")
                    rows["single"].append(bench_plain.single(w, cores))
                    rows["average x2"].append(bench_plain.average(w, 2))
                    for shards, key in ((1, "1 shard"), (2, "2 shards")):
                        job = fleet.run_job(w.spec(shards, max(1, cores // shards)))
                        wall = bench_platform.server_wall_s(job)
                        rows[key].append(
                            {"wall_s": wall, "val_accuracy": job["metrics"]["val_accuracy"], "job": job["id"]}
                        )
                results["workloads"][name] = rows
                results["reference"][name] = self.reference(name)
            results["dispatch"] = self.dispatch(fleet, opts["repeat"])
            results["latency_ms"] = self.latency(fleet)
            if not opts["skip_api"]:
                results["api"] = self.api(fleet, opts["jobs_in_db"])
        report = self.report(results, cores, opts)
        Path(opts["output"]).write_text(report)
        self.stdout.write(report)
        self.say(f"written to {opts['output']}")

    def say(self, msg: str) -> None:
        self.stderr.write(msg)

    def reference(self, name: str) -> dict:
        """shared/bench/reference.py in the same run, where the checkout has it beside it."""
        script = REPO.parent / "shared" / "bench" / "reference.py"
        if not script.exists():
            return {}
        out = {}
        for mode, extra in (("single", []), ("average", ["--procs", "2", "--mode", "average"])):
            proc = subprocess.run(
                [sys.executable, str(script), "--workload", name, *extra], capture_output=True, text=True, check=True
            )
            out[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
        return out

    def dispatch(self, fleet, repeat: int) -> dict:
        self.say("dispatch overhead: logreg on iris, 100 epochs x 10 shards, against a bare no-op chord ...")
        platform_ms, bare_ms = [], []
        spec = {"model_type": "logreg", "dataset": "iris", "epochs": 100, "num_workers": 10, "threads": 1,
                "batch_size": 32, "keep_checkpoints": 1}  # fmt: skip
        for _ in range(repeat):
            job = fleet.run_job(spec)
            platform_ms.append(bench_platform.server_wall_s(job) / (100 * 10) * 1000)
            bare_ms.append(bench_platform.bare_chord_per_task_ms(fleet, 100, 10))
        return {"platform_ms": platform_ms, "bare_ms": bare_ms}

    def latency(self, fleet) -> list[float]:
        self.say("latency: submit to first shard started ...")
        out = []
        for _ in range(7):
            job = fleet.run_job({"model_type": "logreg", "dataset": "iris", "epochs": 1, "num_workers": 1})
            out.append(bench_platform.first_shard_latency_ms(fleet, job))
        return out

    def api(self, fleet, jobs_in_db: int) -> dict:
        self.say("API: GET /jobs/<id> and POST /jobs under gunicorn ...")
        job = fleet.request("GET", "/api/v1/jobs?page_size=1")["results"][0]
        out = {"get_job": bench_platform.wrk_load(f"{fleet.base}/api/v1/jobs/{job['id']}", fleet.token)}
        out["post_job"] = bench_platform.post_load(fleet)
        self.say(f"API: GET /jobs with {jobs_in_db} jobs in the database ...")
        bench_platform.seed_jobs(fleet, jobs_in_db)
        out["list_ms"] = bench_platform.timed_get_ms(fleet, "/api/v1/jobs")
        out["list_page_500_ms"] = bench_platform.timed_get_ms(fleet, "/api/v1/jobs?page=500")
        out["jobs_in_db"] = jobs_in_db
        return out

    def report(self, results: dict, cores: int, opts) -> str:
        mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        lines = [
            "# Benchmarks",
            "",
            f"Measured {date.today().isoformat()} on {platform.machine()} Linux, {cores} cores, {mem_gib:.0f} GiB, "
            f"Python {platform.python_version()}, torch {__import__('torch').__version__}, by",
            f"`make bench` (`python manage.py benchmark --repeat {opts['repeat']}`). Medians with (min–max) of "
            f"{opts['repeat']} interleaved repetitions; ratios are of medians measured in this one run.",
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
                target = TARGETS.get((name, label))
                if target:
                    verdicts.append((f"{name} {label}", f"{ratio:.2f}", f"≤ {target}", ratio <= target))
            worst_acc = max(abs(acc["1 shard"] - acc["single"]), abs(acc["2 shards"] - acc["average x2"]))
            verdicts.append((f"{name} accuracy vs plain", f"{worst_acc:.4f}", "≤ 0.01", worst_acc <= 0.01))
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
        verdicts.append(("submit to first shard", f"{med(lat):.0f} ms", "≤ 200 ms", med(lat) <= 200))
        if "api" in results:
            a = results["api"]
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
        lines += ["", "## Targets", "", "| target | measured | goal | holds |", "| --- | --- | --- | --- |"]
        lines += [f"| {t} | {m} | {g} | {'yes' if ok else '**no**'} |" for t, m, g, ok in verdicts]
        findings = REPO / "docs" / "PERFORMANCE.md"
        if findings.exists():
            lines += ["", findings.read_text().strip()]
        return "\n".join(lines) + "\n"
