"""Submit a training job, as POST /api/v1/jobs does; --watch follows it to the end."""

from __future__ import annotations

import json

from django.core.management.base import CommandError
from django.db import transaction

from jobs import queue_consumers
from jobs.management.commands._common import JobCommand, first_error_line, get_owner
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

    def handle(self, *args, **opts):
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
        if code == 0:
            self.stdout.write(self.style.SUCCESS(f"job {job.id} succeeded: val_accuracy {job.val_accuracy:.4f}"))
            return
        raise CommandError(f"job {job.id} {job.status}" + (f": {job.error}" if job.error else ""), returncode=code)
