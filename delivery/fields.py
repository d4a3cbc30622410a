"""A text field encrypted at rest with Fernet, keyed from settings.FIELD_ENCRYPTION_KEYS."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "fernet:"


def _fernet_key(secret: str) -> bytes:
    # Any string becomes a valid Fernet key; a real Fernet key is used as is.
    try:
        if len(base64.urlsafe_b64decode(secret.encode())) == 32:
            return secret.encode()
    except ValueError:
        pass
    digest = hashlib.sha256(b"signalserver.field-encryption:" + secret.encode()).digest()
    return base64.urlsafe_b64encode(digest)


def _cipher() -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(k)) for k in settings.FIELD_ENCRYPTION_KEYS])


def encrypt(value: str) -> str:
    return PREFIX + _cipher().encrypt(value.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored.startswith(PREFIX):
        return stored
    try:
        return _cipher().decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted: SECRET_KEY or FIELD_ENCRYPTION_KEYS changed. "
            "Add the previous key to FIELD_ENCRYPTION_KEYS (after the new one)."
        ) from None


class EncryptedTextField(models.TextField):  # type: ignore[type-arg]
    """Stores `fernet:<token>`; Python code only ever sees the plain text."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        return None if value is None else decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value in (None, "") or str(value).startswith(PREFIX):
            return value
        return encrypt(str(value))


def compress_with_lz4(schema_editor: Any, columns: list[tuple[str, str]]) -> None:
    """On PostgreSQL built with lz4, store these large columns with it: it costs a fraction of
    the CPU of the default pglz when rows are written and read. Elsewhere nothing changes."""
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'")
        row = cursor.fetchone()
        if not row or "lz4" not in (row[0] or []):
            return
        quote = connection.ops.quote_name
        for table, column in columns:
            cursor.execute(f"ALTER TABLE {quote(table)} ALTER COLUMN {quote(column)} SET COMPRESSION lz4")
