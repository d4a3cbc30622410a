"""Finding emails by a piece of their subject or sender without reading every row.

The results are always those of `icontains` on the subject or the sender; an index narrows
the rows first. PostgreSQL's planner picks its pg_trgm indexes by itself. On SQLite the
FTS5 trigram table (migration 0004) is used when the text is rare: a bounded probe of the
index decides, since a common text ("Lot") is found sooner by walking the newest emails.
"""

from __future__ import annotations

from django.db import connection
from django.db.models import Q
from django.db.models.expressions import RawSQL

TRIGRAM = 3  # the index knows no shorter text
RARE = 2000  # up to this many matches, the index beats walking the newest emails


def _phrase(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _rare_on_sqlite(text: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM (SELECT rowid FROM mail_email_search WHERE mail_email_search MATCH %s LIMIT %s)",
            [_phrase(text), RARE + 1],
        )
        return bool(cursor.fetchone()[0] <= RARE)


def subject_or_sender_contains(text: str) -> Q:
    contains = Q(subject__icontains=text) | Q(sender__icontains=text)
    if connection.vendor != "sqlite" or len(text) < TRIGRAM or not _rare_on_sqlite(text):
        return contains
    matches = RawSQL("SELECT rowid FROM mail_email_search WHERE mail_email_search MATCH %s", [_phrase(text)])
    return Q(pk__in=matches) & contains
