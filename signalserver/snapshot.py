"""What a page drew from the database, kept for as long as the database shows the same rows.

`database_state()` names what the current connection sees:

- on PostgreSQL, its snapshot (`pg_current_snapshot()`: the transactions committed and still in
  progress). Two equal snapshots see the same rows; any commit, in any process, changes it;
- on SQLite, `PRAGMA data_version`, which moves when another connection, of any process, commits
  to the file, with the connection's own count of changed rows (its own writes leave the first
  unchanged).

`keep(key, make)` returns what `make()` returned on the same connection in the same state, or
calls it. Each connection keeps its own values (SQLite's data_version means something only to
the connection that read it), and a new state drops what was kept in the former one: a state
never comes back. Inside a transaction nothing is kept: PostgreSQL's snapshot does not show the
transaction's own uncommitted writes.

What `make()` returns must depend on the rows alone (not on the user, the clock or the request
beyond what `key` says), and it is computed after the state was read, so it is never older
than the state it is kept under.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, connections

T = TypeVar("T")
KEPT_PER_CONNECTION = 16


class _Kept:
    """Values kept for one DB-API connection, all in the same state."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw
        self.state: str | None = None
        self.values: dict[Hashable, Any] = {}


def database_state(using: str = DEFAULT_DB_ALIAS) -> str | None:
    """What the connection sees, as a string; None where that cannot be told."""
    connection = connections[using]
    if connection.in_atomic_block:
        return None
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_current_snapshot()::text")
            return str(cursor.fetchone()[0])
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA data_version")
            return f"{cursor.fetchone()[0]}:{connection.connection.total_changes}"
    return None


def keep(key: Hashable, make: Callable[[], T], using: str = DEFAULT_DB_ALIAS) -> T:
    state = database_state(using)
    if state is None:
        return make()
    connection = connections[using]
    kept: _Kept | None = getattr(connection, "signalserver_kept", None)
    if kept is None or kept.raw is not connection.connection:
        kept = _Kept(connection.connection)
        connection.signalserver_kept = kept  # type: ignore[attr-defined]
    if kept.state != state:
        kept.state, kept.values = state, {}
    if key in kept.values:
        value: T = kept.values[key]
        return value
    value = make()
    if len(kept.values) >= KEPT_PER_CONNECTION:
        kept.values.pop(next(iter(kept.values)))
    kept.values[key] = value
    return value
