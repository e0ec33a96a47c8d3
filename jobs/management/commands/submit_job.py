"""Submit a training job, as POST /api/v1/jobs does; --watch follows it to the end."""

from __future__ import annotations

import json

from django.core.management.base import CommandError
from django.db import transaction

from jobs import queue_consumers
from jobs.management.commands._common import JobCommand, first_error_line, get_owner
from jobs.registry import services as registry
from jobs.services import lifecycle
from jobs.specs import SpecInvalid, job_spec_validate
from jobs.watch import exit_code_for, stop_watching, watch_job
from tensorfleet_site.quotas.limits import QuotaExceeded

# option dest -> API field
OPTIONS = {
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
    "keep_checkpoints": "keep_checkpoints",
}


class Command(JobCommand):
    help = "Submit a training job (the same fields and checks as the API). --watch shows progress until it ends."

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="model_type: logreg, mlp or cnn")
        parser.add_argument(
            "--dataset", required=True, help="a built-in dataset: digits, iris, wine, breast_cancer, synthetic"
        )
        parser.add_argument("--dataset-size", help="samples, for synthetic")
        parser.add_argument("--workers", help="data shards trained in parallel each epoch (num_workers)")
        parser.add_argument("--epochs")
        parser.add_argument("--batch-size")
        parser.add_argument("--lr", "--learning-rate", dest="lr")
        parser.add_argument("--optimizer", help="adam or sgd")
        parser.add_argument("--momentum")
        parser.add_argument("--seed")
        parser.add_argument("--queue", help="cpu (default) or gpu")
        parser.add_argument("--threads", help="torch CPU threads per shard")
        parser.add_argument("--name")
        parser.add_argument("--owner", help="username (default: the first superuser)")
        parser.add_argument("--watch", action="store_true", help="show a progress bar; exit 0 only if the job succeeds")
        parser.add_argument("--json", action="store_true", help="print the job as JSON")
        # CI/CD: gate on the result, then register it (docs/CICD.md).
        parser.add_argument(
            "--min-accuracy",
            type=float,
            help="with --watch: exit 4 unless the job's best validation accuracy reaches this (0 to 1)",
        )
        parser.add_argument(
            "--register-as",
            metavar="NAME",
            help="with --watch: register the best checkpoint as the model's next version",
        )
        parser.add_argument("--alias", help="with --register-as: point this alias (e.g. staging) at the new version")

    def handle(self, *args, **opts):
        self._check_ci_options(opts)
        data = {field: opts[dest] for dest, field in OPTIONS.items() if opts.get(dest) is not None}
        labels = {field: "--" + dest.replace("_", "-") for dest, field in OPTIONS.items()}
        try:
            spec = job_spec_validate(owner=lambda: get_owner(opts["owner"]), data=data)
            owner = get_owner(opts["owner"])
            with transaction.atomic():
                job = lifecycle.job_create(owner=owner, spec=spec)
        except SpecInvalid as exc:
            raise CommandError(first_error_line(exc.errors, labels)) from None
        except QuotaExceeded as exc:
            raise CommandError(f"{labels.get(exc.field, exc.field or 'quota')}: {exc}") from None
        if opts["json"]:
            from jobs.serializers import JobCreatedSerializer

            self.stdout.write(json.dumps(JobCreatedSerializer(job, context={"request": None}).data, default=str))
        else:
            self.stdout.write(f"submitted job {job.id} ({job.total_tasks} tasks on queue {job.queue})")
            # On stderr, as the API's "warnings" (in the --json output): stdout stays the job.
            for warning in queue_consumers.queue_warnings(job.queue):
                self.stderr.write(self.style.WARNING(f"warning: {warning}"))
        if not opts["watch"]:
            return
        try:
            job = watch_job(job.id, out=self.stderr._out)
        except KeyboardInterrupt:  # Ctrl-C stops the watching, not the job
            stop_watching(job, out=self.stderr)
        code = exit_code_for(job)
        if code != 0:
            raise CommandError(f"job {job.id} {job.status}" + (f": {job.error}" if job.error else ""), returncode=code)
        self.stdout.write(self.style.SUCCESS(f"job {job.id} succeeded: val_accuracy {job.val_accuracy:.4f}"))
        self._gate_and_register(job, opts)

    def _check_ci_options(self, opts) -> None:
        for option in ("min_accuracy", "register_as"):
            if opts[option] is not None and not opts["watch"]:
                raise CommandError(f"--{option.replace('_', '-')} needs --watch (it acts on the finished job)")
        if opts["alias"] and not opts["register_as"]:
            raise CommandError("--alias needs --register-as")
        if opts["min_accuracy"] is not None and not 0 <= opts["min_accuracy"] <= 1:
            raise CommandError("--min-accuracy: a fraction from 0 to 1")
        for problem in (
            opts["register_as"] and registry.model_name_error(opts["register_as"]),
            opts["alias"] and registry.alias_name_error(opts["alias"]),
        ):
            if problem:
                raise CommandError(problem)

    def _gate_and_register(self, job, opts) -> None:
        """A succeeded job: exit 4 below --min-accuracy (its best validation accuracy, the
        checkpoint --register-as registers); else register it, and move --alias to it."""
        best = job.best_val_accuracy
        if opts["min_accuracy"] is not None and (best is None or best < opts["min_accuracy"]):
            reached = "no accuracy" if best is None else f"best val_accuracy {best:.4f}"
            raise CommandError(
                f"job {job.id} reached {reached}, below --min-accuracy {opts['min_accuracy']}", returncode=4
            )
        if not opts["register_as"]:
            return
        try:
            model = registry.model_get_or_create(owner=job.owner, name=opts["register_as"])
            version = registry.version_create(model=model, job=job, source="best")
            if opts["alias"]:
                registry.alias_set(model=model, name=opts["alias"], version=version.version)
        except registry.RegistryError as exc:
            raise CommandError(f"--register-as: {exc}") from None
        moved = f"; {opts['alias']} -> {version.version}" if opts["alias"] else ""
        self.stdout.write(
            f"registered {model.name} version {version.version} (sha256 {version.checkpoint_sha256}){moved}"
        )
