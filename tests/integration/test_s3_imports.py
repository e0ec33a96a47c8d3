"""dataset_path imports from a real S3 server (SeaweedFS): only from the places listed in
TENSORFLEET_DATASET_IMPORT_S3, never the platform's own bucket, and a DatasetError (a 400
through the API), not a 500, for a missing bucket or object."""

from __future__ import annotations

import boto3
import pytest

from storage_app.datasets import DatasetError, dataset_import
from tests.datagen import blobs, write_csv
from tests.factories import UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_imports_only_from_listed_places(s3_storage, settings, tmp_path):
    env = s3_storage.env()
    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_S3_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_S3_REGION_NAME"],
    )
    platform = env["AWS_STORAGE_BUCKET_NAME"]
    settings.AWS_STORAGE_BUCKET_NAME = settings.DATASETS_BUCKET = platform
    client.create_bucket(Bucket="shared-data")
    x, y = blobs(80, 3, 2)
    data = write_csv(tmp_path / "blobs.csv", x, y).read_bytes()
    for key in ("public/blobs.csv", "private/blobs.csv"):
        client.put_object(Bucket="shared-data", Key=key, Body=data)
    client.put_object(Bucket=platform, Key="blobs.csv", Body=data)
    settings.TENSORFLEET_DATASET_IMPORT_S3 = ["shared-data/public/", "no-such-bucket", platform]
    user = UserFactory()

    dataset = dataset_import(owner=user, uri="s3://shared-data/public/blobs.csv")
    assert dataset.num_samples == 80

    cases = {
        "s3://shared-data/private/blobs.csv": "not under the S3 places",
        "s3://shared-data/": "not under the S3 places",
        "s3://shared-data/public/missing.csv": "no such object",
        "s3://no-such-bucket/": "no such bucket",
        f"s3://{platform}/": "the platform's own objects",
        f"s3://{platform}/{dataset.file.name}": "the platform's own objects",
        "s3://Bad_Bucket!/x": "not a valid S3 bucket name",
    }
    for uri, phrase in cases.items():
        with pytest.raises(DatasetError) as exc:
            dataset_import(owner=user, uri=uri)
        assert exc.value.status == 400 and phrase in str(exc.value), (uri, str(exc.value))
    # A plain object in a listed bucket, outside the platform's prefixes, is fine.
    assert dataset_import(owner=user, uri=f"s3://{platform}/blobs.csv").sha256 == dataset.sha256
