from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError
from django.core.management.base import BaseCommand, CommandError

from storage_app.buckets import ensure_buckets


class Command(BaseCommand):
    help = "Create the S3 buckets the settings name (checkpoints, datasets) if they are missing."

    def handle(self, *args, **opts):
        try:
            result = ensure_buckets()
        except (BotoCoreError, ClientError) as exc:
            raise CommandError(f"cannot reach the object storage: {exc}") from None
        if not result:
            self.stdout.write("local file storage: no buckets to create")
        for bucket, created in result:
            self.stdout.write(f"bucket {bucket}: {'created' if created else 'exists'}")
