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
import subprocess
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from tensorfleet_site.benchmark import harness as bench_platform
from tensorfleet_site.benchmark import plain as bench_plain
from tensorfleet_site.benchmark import rounds_accuracy
from tensorfleet_site.benchmark.report import render_report

REPO = Path(__file__).resolve().parents[4]
TARGETS = {  # (workload, comparison) -> the largest ratio that passes
    ("synth-mlp", "1 shard / single"): 1.10,
    ("digits-cnn", "1 shard / single"): 1.25,
    ("synth-mlp", "2 shards / average x2"): 1.15,
}


class Command(BaseCommand):
    help = "Benchmark the platform against plain PyTorch loops; writes BENCHMARKS.md."

    def add_arguments(self, parser):
        parser.add_argument("--repeat", type=int, default=3, help="repetitions of each measurement (medians reported)")
        parser.add_argument("--workloads", default="digits-cnn,synth-mlp,shapes-resnet")
        parser.add_argument("--output", default=str(REPO / "BENCHMARKS.md"))
        parser.add_argument("--skip-api", action="store_true", help="skip the API load test")
        parser.add_argument("--jobs-in-db", type=int, default=100_000, help="jobs in the database for the list test")
        parser.add_argument(
            "--skip-rounds-accuracy",
            action="store_true",
            help="skip accuracy against shards (rounds, outer optimizers)",
        )

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
            results["rounds"] = self.rounds(fleet, opts["repeat"])
            results["latency_ms"] = self.latency(fleet)
            self.say("many jobs: 300 one-epoch jobs (logreg/iris, 2 shards) submitted together ...")
            results["many_jobs"] = bench_platform.many_jobs(fleet, 300)
            self.say("reconciler: one pass with 3,000 running jobs ...")
            results["reconciler"] = bench_platform.reconciler_pass(fleet, 3000)
            if not opts["skip_api"]:
                results["api"] = self.api(fleet, opts["jobs_in_db"])
        if not opts["skip_rounds_accuracy"]:
            self.say("accuracy against shards: 1, 2, 4 and 8 shards, averaging and outer optimizers (about 15 min) ...")
            results["rounds_accuracy"] = rounds_accuracy.table([n for n in names if n in ("digits-cnn", "synth-mlp")])
        report = render_report(results, cores=cores, repeat=opts["repeat"], targets=TARGETS, repo=REPO)
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
                [sys.executable, str(script), "--workload", name, *extra], capture_output=True, text=True
            )
            if proc.returncode != 0:  # a workload of ours that reference.py does not have (cifar-resnet18)
                return {}
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

    def rounds(self, fleet, repeat: int) -> dict:
        """The fixed cost of a round: a job of many rounds doing almost no arithmetic (logreg on
        iris, 2 shards, sync_every_steps 1: 2 rounds an epoch, nesterov), against a bare chord of
        the same shape (2 no-op tasks and a body that sends the next chord)."""
        self.say("rounds: logreg on iris, 2 shards, 100 rounds of one step, against a bare no-op chord ...")
        epochs, shards = 50, 2
        spec = {"model_type": "logreg", "dataset": "iris", "epochs": epochs, "num_workers": shards, "threads": 1,
                "batch_size": 32, "keep_checkpoints": 1, "sync_every_steps": 1,
                "outer_optimizer": "nesterov"}  # fmt: skip
        platform_ms, bare_ms = [], []
        for _ in range(repeat):
            job = fleet.run_job(spec)
            rounds = epochs * job["rounds_per_epoch"]
            platform_ms.append(bench_platform.server_wall_s(job) / rounds * 1000)
            bare_ms.append(bench_platform.bare_chord_per_task_ms(fleet, rounds, shards) * shards)
        return {"platform_ms": platform_ms, "bare_ms": bare_ms, "rounds": rounds, "shards": shards}

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
