from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from storage_app.datasets import DatasetError, dataset_create
from storage_app.formats import FORMATS, DatasetFormatError, parse_image_size
from tensorfleet_site.command_helpers import JobCommand, get_owner
from tensorfleet_site.quotas.limits import QuotaExceeded


class Command(JobCommand):
    help = (
        "Upload a dataset file: CSV or Parquet with a label column (integers or names), NPZ with X and y, "
        "a zip of MNIST IDX files, or image folders (a zip or tar of class_name/*.png|jpg)."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--name", help="default: the file name without extension")
        parser.add_argument("--format", choices=FORMATS, help="default: from the file name")
        parser.add_argument("--label-column", default="label", help="CSV and Parquet: the column holding labels")
        parser.add_argument(
            "--image-size",
            help="image folders: resize every image to a side (32) or WIDTHxHEIGHT (default: most common)",
        )
        parser.add_argument("--owner", help="username (default: the first superuser)")

    def handle(self, *args, **opts):
        path = Path(opts["path"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        try:
            image_size = parse_image_size(opts["image_size"])
        except DatasetFormatError as exc:
            raise CommandError(f"--image-size: {exc}") from None
        owner = get_owner(opts["owner"])
        try:
            dataset = dataset_create(
                owner=owner,
                name=opts["name"] or path.name.split(".")[0],
                path=path,
                fmt=opts["format"],
                label_column=opts["label_column"],
                source=str(path),
                image_size=image_size,
            )
        except DatasetError as exc:
            raise CommandError(
                f"{'--' + exc.field.replace('_', '-') if exc.field != 'file' else path}: {exc}"
            ) from None
        except QuotaExceeded as exc:
            raise CommandError(f"{path}: {exc}") from None
        self.stdout.write(
            f"dataset {dataset.id} {dataset.name!r}: {dataset.num_samples} samples, shape {dataset.input_shape}, "
            f"{dataset.num_classes} classes{_named(dataset.class_names)}, sha256 {dataset.sha256}"
        )


def _named(names: list[str]) -> str:
    shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
    return f" ({shown})" if names else ""
