"""The ``tensorfleet`` command's arguments. ``--url`` and ``--token`` (or the
TENSORFLEET_URL and TENSORFLEET_TOKEN variables) go before or after the command."""

from __future__ import annotations

import argparse
from types import ModuleType

EPILOG = (
    "The server and token come from --url/--token or TENSORFLEET_URL/TENSORFLEET_TOKEN. Ids: a job's id or a "
    "unique prefix of 8 or more characters, as `tensorfleet jobs` shows them."
)


def _connection(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """On the main parser with defaults; on each command's too (defaults suppressed, so
    an option given before the command is not reset by it)."""
    unset = argparse.SUPPRESS if suppress else None
    parser.add_argument("--url", default=unset, help="the server, e.g. http://localhost:8000 (TENSORFLEET_URL)")
    parser.add_argument("--token", default=unset, help="an API token (TENSORFLEET_TOKEN)")
    parser.add_argument(
        "--timeout", type=float, default=unset if suppress else 30.0, help="seconds to wait for each answer (30)"
    )


def _submit(sub, common) -> argparse.ArgumentParser:
    p = sub.add_parser("submit", parents=[common], help="submit a training job", epilog=EPILOG)
    p.add_argument("--model", help="model_type: logreg, mlp, cnn, ... (GET /api/v1/architectures)")
    p.add_argument("--dataset", help="a built-in (digits, iris, ...), or the name or id of one of your datasets")
    p.add_argument("--dataset-size", type=int, help="samples, for synthetic")
    p.add_argument("--workers", type=int, help="data shards trained in parallel each epoch (num_workers)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", "--learning-rate", dest="lr", type=float)
    p.add_argument("--optimizer", help="adam or sgd")
    p.add_argument("--momentum", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--queue", help="cpu (default) or gpu")
    p.add_argument("--threads", type=int, help="torch CPU threads per shard")
    p.add_argument("--name")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE", help="any other spec field (a JSON value)")
    p.add_argument("--spec", metavar="FILE", help="a JSON file holding the spec ('-': stdin); options override it")
    p.add_argument("--watch", action="store_true", help="show a progress bar; exit 0 only if the job succeeds")
    p.add_argument("--json", action="store_true", help="print the job as JSON")
    return p


def build_parser(handlers: ModuleType) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tensorfleet", description="Train on a TensorFleet server from any machine.", epilog=EPILOG
    )
    _connection(parser, suppress=False)
    common = argparse.ArgumentParser(add_help=False)
    _connection(common, suppress=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    _submit(sub, common).set_defaults(handler=handlers.cmd_submit)

    p = sub.add_parser("submit-sweep", parents=[common], help="submit a hyperparameter sweep from a JSON file")
    p.add_argument("file", help="the sweep spec (the body of POST /api/v1/sweeps), or '-' for stdin")
    p.add_argument("--watch", action="store_true", help="follow the trials; exit 0 only if the sweep succeeds")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=handlers.cmd_submit_sweep)

    p = sub.add_parser("watch", parents=[common], help="follow a job or a sweep with a progress bar until it ends")
    p.add_argument("id", help="a job's or a sweep's id, or a unique prefix of 8 or more characters")
    p.add_argument("--sweep", action="store_true", help="the id is a sweep's (found either way)")
    p.set_defaults(handler=handlers.cmd_watch)

    p = sub.add_parser("status", parents=[common], help="show one job")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=handlers.cmd_status)

    p = sub.add_parser("jobs", parents=[common], help="list your jobs, newest first")
    p.add_argument("--status", help="queued, running, succeeded, failed or cancelled")
    p.add_argument("--sweep", help="a sweep's trials")
    p.add_argument("--filter", action="append", metavar="KEY=VALUE", help="any other filter the server takes")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=handlers.cmd_jobs)

    p = sub.add_parser("metrics", parents=[common], help="a job's metrics, one row per epoch")
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="one list per metric")
    p.set_defaults(handler=handlers.cmd_metrics)

    for name, handler, text in (
        ("cancel", handlers.cmd_cancel, "cancel a queued or running job"),
        ("resume", handlers.cmd_resume, "resume a cancelled or failed job"),
    ):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("id")
        p.set_defaults(handler=handler)

    p = sub.add_parser("download", parents=[common], help="download a checkpoint and check its sha256")
    p.add_argument("id")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--epoch", type=int, help="that epoch's checkpoint")
    which.add_argument("--best", action="store_true", help="the best epoch's (highest val_accuracy)")
    p.add_argument("-o", "--output", help="file or folder to write (default: the current folder)")
    p.set_defaults(handler=handlers.cmd_download)

    p = sub.add_parser("upload-dataset", parents=[common], help="upload a dataset file")
    p.add_argument("path")
    p.add_argument("--name", help="default: the file name up to its first dot")
    p.add_argument("--label-column", help="CSV: the column holding the labels (default: label)")
    p.add_argument("--format", help="default: from the file name")
    p.set_defaults(handler=handlers.cmd_upload_dataset)

    p = sub.add_parser("register-model", parents=[common], help="register a job's checkpoint as a model version")
    p.add_argument("name")
    p.add_argument("job")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--epoch", type=int)
    which.add_argument("--final", action="store_true", help="the final checkpoint (default: the best)")
    p.add_argument("--alias", help="point this alias (e.g. staging) at the new version")
    p.add_argument("--description", default="")
    p.set_defaults(handler=handlers.cmd_register_model)
    return parser
