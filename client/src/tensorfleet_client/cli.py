"""``tensorfleet``: the common commands from any machine with the server's URL and a token.

The server's own management commands work on its database; this one talks to the API,
so it runs on a laptop or in CI. Any error is one line on stderr and a non-zero exit;
Ctrl-C while watching stops the watching, not the job.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tensorfleet_client.client import FINAL, Client
from tensorfleet_client.errors import ClientError, NotFound, TensorFleetError, errors_line

EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 2}
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130  # the shell's code for a command ended by SIGINT

# submit's options -> the API's field names (the same as manage.py submit_job's)
SUBMIT_OPTIONS = {
    "name": "name",
    "model": "model_type",
    "dataset": "dataset",
    "dataset_size": "dataset_size",
    "workers": "num_workers",
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "learning_rate",
    "optimizer": "optimizer",
    "momentum": "momentum",
    "seed": "seed",
    "queue": "queue",
    "threads": "threads",
}


class Failure(Exception):
    """A command's own error: one line, exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR):
        super().__init__(message)
        self.code = code


def _value(text: str) -> Any:
    """A --set value: JSON when it parses (numbers, true, lists, objects), else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _read_json(path: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
    except OSError as exc:
        raise Failure(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise Failure(f"{path} is not JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise Failure(f"{path} must hold one JSON object, not {type(spec).__name__}")
    return spec


def _short(ident: str) -> str:
    return ident[:8]


def _ended(kind: str, info: dict[str, Any]) -> int:
    """Print how a watched job or sweep ended; its exit code (0 only for success)."""
    if info["status"] == "succeeded":
        metrics = info.get("metrics") or {}
        accuracy = metrics.get("val_accuracy")
        tail = f": val_accuracy {accuracy:.4f}" if accuracy is not None else ""
        if kind == "sweep" and info.get("best"):
            tail = f": best trial {info['best']['trial_number']} (job {_short(info['best']['job_id'])}), "
            tail += f"{info.get('metric')} {info['best']['metric']:.4f}"
        print(f"{kind} {info['id']} succeeded{tail}")
        return 0
    error = f": {info['error']}" if info.get("error") else ""
    print(f"{kind} {info['id']} {info['status']}{error}", file=sys.stderr)
    return EXIT_CODES.get(info["status"], 3)


def _follow(client: Client, kind: str, ident: str) -> int:
    """Watch a job (or sweep) to its end; on Ctrl-C say it goes on and how to watch again."""
    try:
        if kind == "sweep":
            info = client.wait_sweep(ident, progress=True, file=sys.stderr)
        else:
            info = client.wait(ident, progress=True, file=sys.stderr)
    except KeyboardInterrupt:
        status = ""
        try:
            current = client.sweep(ident) if kind == "sweep" else client.job(ident)
            status = f" ({current['status']})"
            goes_on = "has ended" if current["status"] in FINAL else "goes on"
        except (TensorFleetError, KeyboardInterrupt):
            goes_on = "goes on"
        print(
            f"\nstopped watching; {kind} {_short(ident)} {goes_on}{status}. "
            f"Watch it again with: tensorfleet watch {_short(ident)}",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    return _ended(kind, info)


def cmd_submit(client: Client, args: argparse.Namespace) -> int:
    spec = _read_json(args.spec) if args.spec else {}
    spec.update(
        {field: getattr(args, dest) for dest, field in SUBMIT_OPTIONS.items() if getattr(args, dest) is not None}
    )
    for item in args.set or []:
        field, sep, raw = item.partition("=")
        if not sep or not field:
            raise Failure(f"--set {item!r}: give FIELD=VALUE")
        spec[field.strip()] = _value(raw)
    try:
        job = client.submit_job(spec)
    except ClientError as exc:  # name the options the user typed, not the API's fields
        labels = {field: "--" + dest.replace("_", "-") for dest, field in SUBMIT_OPTIONS.items()}
        renamed = {labels.get(k, k): v for k, v in exc.errors.items()}
        raise Failure(errors_line(renamed) if renamed else str(exc)) from None
    if args.json:
        print(json.dumps(job, indent=2))
    else:
        print(f"submitted job {job['id']} ({job.get('total_tasks')} tasks on queue {job.get('queue')})")
    for warning in job.get("warnings") or []:
        print(f"warning: {warning}", file=sys.stderr)
    return _follow(client, "job", job["id"]) if args.watch else 0


def cmd_submit_sweep(client: Client, args: argparse.Namespace) -> int:
    sweep = client.submit_sweep(_read_json(args.file))
    if args.json:
        print(json.dumps(sweep, indent=2))
    else:
        print(f"submitted sweep {sweep['id']}: {sweep.get('trials')} trials, {sweep.get('search')} search")
    return _follow(client, "sweep", sweep["id"]) if args.watch else 0


def cmd_watch(client: Client, args: argparse.Namespace) -> int:
    if args.sweep:
        return _follow(client, "sweep", client.sweep(args.id)["id"])
    try:
        kind, ident = "job", client.job(args.id)["id"]
    except NotFound:  # not a job's id: a sweep's?
        try:
            kind, ident = "sweep", client.sweep(args.id)["id"]
        except NotFound:
            raise Failure(f"no job or sweep of yours with an id starting {args.id}") from None
    return _follow(client, kind, ident)


def cmd_status(client: Client, args: argparse.Namespace) -> int:
    job = client.job(args.id)
    if args.json:
        print(json.dumps(job, indent=2))
        return 0
    metrics = job.get("metrics") or {}
    lines = [
        f"job        {job['id']}  {job.get('name') or ''}".rstrip(),
        f"status     {job['status']}" + (f" ({job['waiting_reason']})" if job.get("waiting_reason") else ""),
        f"progress   {job.get('progress', 0):.0%} (epoch {job.get('completed_epochs')}/{job.get('epochs')})",
        f"spec       {job.get('model_type')} on {job.get('dataset')}, {job.get('num_workers')} shard(s), "
        f"batch {job.get('batch_size')}, {job.get('optimizer')} lr {job.get('learning_rate')}, seed {job.get('seed')}",
    ]
    if metrics.get("val_accuracy") is not None:
        lines.append(
            "metrics    " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, (int, float)))
        )
    if job.get("error"):
        lines.append(f"error      {job['error']}")
    print("\n".join(lines))
    return 0


def _table(rows: list[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def cmd_jobs(client: Client, args: argparse.Namespace) -> int:
    filters = {}
    for item in args.filter or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise Failure(f"--filter {item!r}: give KEY=VALUE")
        filters[key.strip()] = value
    if args.limit < 1:
        raise Failure("--limit: must be at least 1")
    jobs = client.jobs(status=args.status, sweep=args.sweep, limit=args.limit, **filters)
    if args.json:
        print(json.dumps(jobs, indent=2))
        return 0
    rows: list[Sequence[str]] = [("ID", "STATUS", "EPOCH", "MODEL", "DATASET", "VAL_ACC", "CREATED", "NAME")]
    for job in jobs:
        accuracy = (job.get("metrics") or {}).get("val_accuracy")
        rows.append(
            (
                _short(job["id"]),
                job["status"],
                f"{job.get('completed_epochs')}/{job.get('epochs')}",
                str(job.get("model_type")),
                str(job.get("dataset")),
                "-" if accuracy is None else f"{accuracy:.4f}",
                str(job.get("created_at", ""))[:19].replace("T", " "),
                job.get("name") or "",
            )
        )
    print(_table(rows))
    return 0


def cmd_metrics(client: Client, args: argparse.Namespace) -> int:
    columns = client.metrics(args.id)
    if args.json:
        print(json.dumps(columns, indent=2))
        return 0
    shown = [c for c in ("epoch", "train_loss", "val_loss", "val_accuracy", "duration_s") if c in columns]
    rows: list[Sequence[str]] = [[c.upper() for c in shown]]
    for i in range(len(columns.get("epoch", []))):
        rows.append(["-" if columns[c][i] is None else f"{columns[c][i]:.4g}" for c in shown])
    print(_table(rows))
    return 0


def cmd_cancel(client: Client, args: argparse.Namespace) -> int:
    job = client.cancel(args.id)
    print(f"cancelled job {job['id']} ({job['status']})")
    return 0


def cmd_resume(client: Client, args: argparse.Namespace) -> int:
    job = client.resume(args.id)
    print(f"resumed job {job['id']} from epoch {job.get('completed_epochs')}")
    return 0


def cmd_download(client: Client, args: argparse.Namespace) -> int:
    which: Any = args.epoch if args.epoch is not None else ("best" if args.best else "latest")
    path = client.download_checkpoint(args.id, which=which, path=args.output, progress=sys.stderr.isatty())
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    print(f"wrote {path} ({path.stat().st_size} bytes, sha256 {digest.hexdigest()}, checked)")
    return 0


def cmd_upload_dataset(client: Client, args: argparse.Namespace) -> int:
    try:
        dataset = client.upload_dataset(
            args.path, args.name, label_column=args.label_column, format=args.format, progress=sys.stderr.isatty()
        )
    except FileNotFoundError as exc:
        raise Failure(str(exc)) from None
    print(
        f"uploaded dataset {dataset['name']} ({dataset['id']}): {dataset.get('num_samples')} samples, "
        f"{dataset.get('num_classes')} classes, sha256 {dataset.get('sha256')}"
    )
    return 0


def cmd_register_model(client: Client, args: argparse.Namespace) -> int:
    which: Any = args.epoch if args.epoch is not None else ("final" if args.final else "best")
    version = client.register_model(args.name, args.job, which, description=args.description, alias=args.alias)
    alias = f", alias {args.alias}" if args.alias else ""
    print(f"registered {args.name} version {version.get('version')}{alias}")
    return 0


def main(argv: Sequence[str] | None = None, *, transport: Any = None) -> int:
    from tensorfleet_client.parser import build_parser

    parser = build_parser(sys.modules[__name__])
    args = parser.parse_args(argv)
    try:
        with Client(args.url, args.token, timeout=args.timeout, transport=transport) as client:
            return args.handler(client, args)
    except Failure as exc:
        print(f"tensorfleet: error: {exc}", file=sys.stderr)
        return exc.code
    except TensorFleetError as exc:
        print(f"tensorfleet: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("\ntensorfleet: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
