"""Batch INSERTs: the poller's (a batch's emails, their raw bytes and their deliveries) and the
sender's (a batch's attempts).

What Django's `bulk_create` writes, with the statement built once per chunk of rows instead
of value by value. For a batch of 200 emails of 24 columns, bulk_create spends more CPU
building its SQL (a placeholder, an expression check and a preparation call for every value)
than the database spends inserting, and the writer shares the interpreter with the thread
that fetches the next batch. Text, numbers, booleans and keys are passed as they are; dates,
JSON and bytes go through their field's `get_db_prep_save`, as with bulk_create; aware
datetimes are written to SQLite as Django's backend writes them (naive UTC, `str()`)
without its eight calls per value, and given to PostgreSQL as they are.

On PostgreSQL, bulk_create sends one array per column (UNNEST), which psycopg builds in
Python value by value; here the rows go as one statement of $n parameters that psycopg hands
to the server without parsing it (a batch of 200 emails: 229 → 59 µs of CPU a row).
`tests/signalserver/test_inserts.py` compares the rows the two write, on both databases.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import itertools
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import (
    AutoField,
    BooleanField,
    CharField,
    DateTimeField,
    Field,
    ForeignKey,
    IntegerField,
    Model,
    TextField,
)

# PostgreSQL's limit on a statement's parameters.
MAX_PARAMETERS = 65535
# Fields whose Python value is what the database driver takes (a str, an int, a bool or None).
PLAIN = (CharField, TextField, IntegerField, BooleanField, ForeignKey)


def insert(objs: Sequence[Model], *, returning_pk: bool = False) -> None:
    """Insert unsaved instances of one model; with `returning_pk`, set their primary keys."""
    if not objs:
        return
    model = type(objs[0])
    fields = [f for f in model._meta.concrete_fields if not isinstance(f, AutoField)]
    for obj in objs:
        obj._prepare_related_fields_for_save(operation_name="bulk_create")  # type: ignore[attr-defined]
    readers = [_reader(f) for f in fields]
    rows = [[read(obj) for read in readers] for obj in objs]
    size = max(min(connection.ops.bulk_batch_size(fields, objs), MAX_PARAMETERS // len(fields)), 1)
    with cursor() as db:
        for start in range(0, len(rows), size):
            chunk = rows[start : start + size]
            db.execute(_statement(model, len(chunk), returning_pk), [v for row in chunk for v in row])
            if returning_pk:
                for obj, (pk,) in zip(objs[start : start + size], db.fetchall(), strict=True):
                    obj.pk = pk
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias


@contextlib.contextmanager
def cursor() -> Iterator[Any]:
    """SQLite: Django's cursor. PostgreSQL: a raw psycopg cursor, its parameters bound by the
    server as $1, $2…: psycopg splits a statement with %s placeholders in Python, and caches
    the split only for statements under 4 KB; Django's errors all the same."""
    if connection.vendor != "postgresql":
        with connection.cursor() as db:
            yield db
        return
    import psycopg

    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.RawCursor(connection.connection) as db:
        yield db


@functools.lru_cache(maxsize=64)
def _statement(model: type[Model], rows: int, returning_pk: bool) -> str:
    fields = [f for f in model._meta.concrete_fields if not isinstance(f, AutoField)]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in fields)
    values = parameter_rows(rows, [""] * len(fields))
    returning = f" RETURNING {quote(str(model._meta.pk.column))}" if returning_pk else ""
    # Names from the model's own metadata, values as parameters.
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES {values}{returning}"  # noqa: S608  # nosec B608


def parameter_rows(rows: int, casts: Sequence[str]) -> str:
    """A VALUES list of `rows` rows of one parameter per item of `casts` (a type to cast it to,
    or "" for none), for a statement run through `cursor`: $1, $2… on PostgreSQL, %s on SQLite."""
    if connection.vendor != "postgresql":
        return ", ".join(["(" + ", ".join(["%s"] * len(casts)) + ")"] * rows)
    numbers = itertools.count(1)
    suffixes = [f"::{cast}" if cast else "" for cast in casts]
    return ", ".join("(" + ", ".join(f"${next(numbers)}{suffix}" for suffix in suffixes) + ")" for _ in range(rows))


def _reader(field: Field[Any, Any]) -> Callable[[Model], Any]:
    if isinstance(field, PLAIN) and type(field).get_db_prep_save is Field.get_db_prep_save:
        return partial(_plain, field.attname)
    if type(field) is DateTimeField and not (field.auto_now or field.auto_now_add) and settings.USE_TZ:
        return partial(_datetime if connection.vendor == "sqlite" else _aware, field)
    return partial(_prepared, field)


def _plain(attname: str, obj: Model) -> Any:
    value = getattr(obj, attname)
    if value is None or isinstance(value, str | int):
        return value
    raise TypeError(f"{attname}: a plain column was given {type(value).__name__} {value!r}")


def _prepared(field: Field[Any, Any], obj: Model) -> Any:
    return field.get_db_prep_save(field.pre_save(obj, True), connection)


def _aware(field: DateTimeField[Any, Any], obj: Model) -> Any:
    """PostgreSQL takes an aware datetime as it is."""
    value = getattr(obj, field.attname)
    if value is None or (type(value) is dt.datetime and value.utcoffset() is not None):
        return value
    return _prepared(field, obj)


def _datetime(field: DateTimeField[Any, Any], obj: Model) -> Any:
    value = getattr(obj, field.attname)
    if value is None:
        return None
    if type(value) is dt.datetime and value.utcoffset() is not None and connection.timezone_name == "UTC":
        return str(value.astimezone(dt.UTC).replace(tzinfo=None))
    return _prepared(field, obj)  # naive, a date, another zone for the database: Django's way
