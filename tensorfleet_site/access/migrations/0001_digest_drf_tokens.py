"""Carry the tokens DRF's authtoken stored in plain text over to knox, as digests, and
erase the plain ones: a key that worked before still works, and the database no longer
holds one that could be read and used."""

from django.db import migrations
from knox.crypto import hash_token
from knox.settings import CONSTANTS

LEGACY_TABLE = "authtoken_token"


def digest_plaintext_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if LEGACY_TABLE not in connection.introspection.table_names():
        return  # a database made after the switch: nothing to carry over
    AuthToken = apps.get_model("knox", "AuthToken")
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            # Overwrite the deleted rows' bytes instead of leaving them in free pages.
            cursor.execute("PRAGMA secure_delete = ON")
        cursor.execute(f"SELECT key, user_id, created FROM {LEGACY_TABLE}")
        for key, user_id, created in cursor.fetchall():
            digest = hash_token(key)
            AuthToken.objects.bulk_create(
                [AuthToken(digest=digest, token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH], user_id=user_id, expiry=None)]
            )
            AuthToken.objects.filter(digest=digest).update(created=created)  # auto_now_add set it to now
        cursor.execute(f"DELETE FROM {LEGACY_TABLE}")


class Migration(migrations.Migration):
    dependencies = [("knox", "0009_extend_authtoken_field")]

    operations = [migrations.RunPython(digest_plaintext_tokens, migrations.RunPython.noop)]
