from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from storage_app.datasets import DatasetError, dataset_create
from storage_app.formats import FORMATS
from tensorfleet_site.command_helpers import JobCommand, get_owner
from tensorfleet_site.quotas.limits import QuotaExceeded


class Command(JobCommand):
    help = "Upload a dataset file (CSV with a label column, NPZ with X and y, or a zip of MNIST IDX files)."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--name", help="default: the file name without extension")
        parser.add_argument("--format", choices=FORMATS, help="default: from the file name")
        parser.add_argument("--label-column", default="label", help="CSV: the column holding labels")
        parser.add_argument("--owner", help="username (default: the first superuser)")

    def handle(self, *args, **opts):
        path = Path(opts["path"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        owner = get_owner(opts["owner"])
        try:
            dataset = dataset_create(
                owner=owner,
                name=opts["name"] or path.name.split(".")[0],
                path=path,
                fmt=opts["format"],
                label_column=opts["label_column"],
                source=str(path),
            )
        except DatasetError as exc:
            raise CommandError(f"{'--' + exc.field if exc.field != 'file' else path}: {exc}") from None
        except QuotaExceeded as exc:
            raise CommandError(f"{path}: {exc}") from None
        self.stdout.write(
            f"dataset {dataset.id} {dataset.name!r}: {dataset.num_samples} samples, shape {dataset.input_shape}, "
            f"{dataset.num_classes} classes, sha256 {dataset.sha256}"
        )
