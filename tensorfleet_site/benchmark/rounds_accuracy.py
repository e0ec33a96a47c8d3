"""Accuracy against shards, with rounds and outer optimizers (README, "Rounds and outer
optimizers"): the benchmark workloads as platform jobs, 1 to 8 shards, ``average`` once
per epoch and ``nesterov`` every H local steps.

Each job runs through the platform's own code (the spec validator, the lifecycle, the
claims, ``workers.steps``' shard and aggregate steps, the outer optimizer, storage) in
one process with a throwaway SQLite database and state folder: each round's chord is
run in order, shards then aggregate, instead of through Celery. The arithmetic is the
one real workers do (the same sha256). One JSON line per job:

  python -m tensorfleet_site.benchmark.rounds_accuracy --workload digits-cnn --shards 8 --outer nesterov --sync 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


def _setup(state: str) -> None:
    os.environ.update(
        DATABASE_URL=f"sqlite:///{state}/db.sqlite3",
        TENSORFLEET_STATE_DIR=state,
        DJANGO_SETTINGS_MODULE="tensorfleet_site.settings",
        TENSORFLEET_QUOTA_ACTIVE_JOBS="0",
        TENSORFLEET_QUOTA_SHARDS_IN_FLIGHT="0",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def run_job(spec: dict) -> dict:
    """Submit ``spec`` and run every round it launches, in order; the job's numbers."""
    from django.contrib.auth import get_user_model

    from jobs import orchestration
    from jobs.models import Job
    from jobs.services import lifecycle
    from jobs.specs import job_spec_validate
    from workers import steps

    chords: list[tuple[object, int, int]] = []

    def epoch_send(job: Job, epoch: int, celery_ids: dict[int, str], *, priority: int = 0, round: int = 1) -> None:
        chords.append((job.id, epoch, round))  # run below, in order, instead of through the broker

    orchestration.epoch_send = epoch_send
    owner = get_user_model().objects.filter(username="bench").first() or get_user_model().objects.create_user("bench")
    job = lifecycle.job_create(owner=owner, spec=job_spec_validate(owner=owner, data=spec))  # launches at commit
    started = time.perf_counter()
    while chords:
        job_id, epoch, round = chords.pop(0)
        for shard in range(spec["num_workers"]):
            steps.shard_step(job_id=job_id, epoch=epoch, shard=shard, worker="bench", round=round)
        steps.aggregate_step(job_id=job_id, epoch=epoch, round=round)
    job = Job.objects.get(id=job.id)
    return {
        "status": job.status,
        "val_accuracy": job.val_accuracy,
        "rounds_per_epoch": job.rounds_per_epoch,
        "wall_s": float(f"{time.perf_counter() - started:.3f}"),
        "sha256": job.checkpoints.get(kind="final").sha256,
    }


SHARDS = (1, 2, 4, 8)
# The rows of the table: (label, outer optimizer, H by workload, outer lr by shard count, outer momentum).
ROWS = (
    ("average, once per epoch", "average", {}, lambda k: 0.7, 0.9),
    *(
        (
            f"nesterov 0.7 / 0.9, H = {h}",
            "nesterov",
            {w: hs[i] for w, hs in (("digits-cnn", (2, 4, 8)), ("synth-mlp", (10, 25, 50)))},
            lambda k: 0.7,
            0.9,
        )
        for i, h in enumerate(("2 / 10", "4 / 25", "8 / 50"))
    ),
    (
        "sgd, H = 1, lr 0.625 x shards (at least 1)",
        "sgd",
        {"digits-cnn": 1, "synth-mlp": 1},
        lambda k: max(1.0, 0.625 * k),
        0.0,
    ),
)


def table(workloads: list[str], *, parallel: int = 2) -> list[dict]:
    """Every row of ``ROWS`` at every shard count, each job in a process of its own, ``parallel`` at a time."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    def one(args: tuple) -> dict:
        w, label, outer, sync, lr, mu, k = args
        cmd = [sys.executable, "-m", __name__, "--workload", w, "--shards", str(k), "--outer", outer]
        cmd += ["--outer-lr", str(lr), "--outer-momentum", str(mu)] + (["--sync", str(sync)] if sync else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        return {"row": label, "outer_lr": lr, "outer_momentum": mu, **json.loads(out)}

    jobs = [
        (w, label, outer, syncs.get(w), lr_of(k), mu, k)
        for w in workloads
        for label, outer, syncs, lr_of, mu in ROWS
        for k in SHARDS
    ]
    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(one, jobs))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", required=True, choices=("digits-cnn", "synth-mlp"))
    parser.add_argument("--shards", type=int, required=True)
    parser.add_argument("--outer", default="average", choices=("average", "sgd", "nesterov"))
    parser.add_argument("--sync", type=int, help="sync_every_steps (H); none: once per epoch")
    parser.add_argument("--outer-lr", type=float, default=0.7)
    parser.add_argument("--outer-momentum", type=float, default=0.9)
    parser.add_argument("--epochs", type=int, help="default: the workload's")
    args = parser.parse_args(argv)
    _setup(tempfile.mkdtemp(prefix="tf-rounds-"))
    from tensorfleet_site.benchmark.plain import WORKLOADS

    w = WORKLOADS[args.workload]
    spec = w.spec(args.shards, threads=1)
    spec.update(outer_optimizer=args.outer, outer_learning_rate=args.outer_lr, outer_momentum=args.outer_momentum)
    if args.sync:
        spec["sync_every_steps"] = args.sync
    if args.epochs:
        spec["epochs"] = args.epochs
    result = run_job(spec)
    line = {"workload": w.name, "shards": args.shards, "outer": args.outer, "sync_every_steps": args.sync, **result}
    sys.stdout.write(json.dumps(line) + "\n")


if __name__ == "__main__":
    main()
