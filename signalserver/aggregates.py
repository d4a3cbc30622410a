"""Counting in SQL what the database already knows, for /metrics, /api/metrics and the charts.

Every function here runs a fixed number of aggregate queries, whatever the size of the history;
time arithmetic is spelled per database so it stays inside SQL (SQLite's Django date functions
are Python callbacks, called once per row).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import Count, Min, OuterRef, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL

from delivery.models import DELIVERY_STATUSES, Attempt, Delivery, LinkTransfer
from mail.models import Email

# Upper bounds (seconds) of the received → delivered histogram; the last bucket is +Inf.
LATENCY_BUCKETS: tuple[float, ...] = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600)
DUE_STATUSES = ("pending", "held", "sending")


def _seconds_between(later: str, earlier: str) -> str:
    if connection.vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


def _epoch_hour(column: str) -> str:
    """The hour (since 1970, UTC) a timestamp falls in."""
    if connection.vendor == "postgresql":
        return f"FLOOR(EXTRACT(EPOCH FROM {column}) / 3600)"
    return f"(CAST(strftime('%%s', {column}) AS INTEGER) / 3600)"


def epoch_hour(moment: dt.datetime) -> int:
    return int(moment.timestamp() // 3600)


def count_by(rows: QuerySet[Any], *keys: str) -> dict[tuple[Any, ...], int]:
    """Rows counted per distinct value of `keys`, in one GROUP BY."""
    # COUNT(*), not COUNT(id): PostgreSQL then answers from an index holding just the keys.
    counted = rows.order_by().values(*keys).annotate(n=Count("*")).values_list(*keys, "n")
    return {tuple(row[:-1]): int(row[-1]) for row in counted}


def emails_by_mailbox_and_decision() -> dict[tuple[Any, ...], int]:
    return count_by(Email.objects.all(), "mailbox_id", "decision")


def deliveries_by_endpoint_and_status() -> dict[tuple[Any, ...], int]:
    return count_by(Delivery.objects.all(), "endpoint_id", "status")


def attempts_by_endpoint_since(since: dt.datetime) -> dict[tuple[Any, ...], int]:
    """Attempts started since `since`, by endpoint and outcome. A few recent attempts look their
    endpoint up one by one, rather than hash every delivery."""
    endpoint = Subquery(Delivery.objects.filter(pk=OuterRef("delivery_id")).order_by().values("endpoint_id")[:1])
    return count_by(Attempt.objects.filter(started__gte=since).annotate(endpoint=endpoint), "endpoint", "outcome")


def attempts_by_id(after: int, upto: int | None) -> dict[tuple[Any, ...], int]:
    """Attempts with after < id <= upto (no upper bound when None), by endpoint and outcome."""
    attempts = Attempt.objects.filter(pk__gt=after)
    return count_by(attempts if upto is None else attempts.filter(pk__lte=upto), "delivery__endpoint_id", "outcome")


def transfers_by_status() -> dict[str, int]:
    return {status: n for (status,), n in count_by(LinkTransfer.objects.all(), "status").items()}


def queue(now: dt.datetime) -> dict[str, Any]:
    """Deliveries due now (the sender's queue) and the release time of the most overdue held one."""
    due = Delivery.objects.filter(status__in=DUE_STATUSES, next_attempt_at__lte=now)
    return due.aggregate(due=Count("id"), oldest_held_release=Min("next_attempt_at", filter=Q(status="held")))


Histogram = tuple[list[int], float]


def latency_histogram(since: dt.datetime | None = None, until: dt.datetime | None = None) -> Histogram:
    """Cumulative counts of delivered deliveries per LATENCY_BUCKETS bound (+Inf last), and the sum of
    seconds; only those delivered in [since, until) when given."""
    empty = ([0] * (len(LATENCY_BUCKETS) + 1), 0.0)
    return latency_histograms_by_hour(since, by_hour=False, until=until).get(None, empty)


def add_histograms(a: Histogram, b: Histogram) -> Histogram:
    return [x + y for x, y in zip(a[0], b[0], strict=True)], a[1] + b[1]


def latency_histograms_by_hour(
    since: dt.datetime | None, by_hour: bool = True, until: dt.datetime | None = None
) -> dict[int | None, Histogram]:
    """The same, per hour of delivery. Latency runs from the delivery's creation, in the transaction
    that records its email (the outbox), to its successful attempt; the `delivery_outcome`
    index holds every column read, so the table itself is not touched."""
    seconds = _seconds_between("delivered_at", "created")
    hour = _epoch_hour("delivered_at") if by_hour else "NULL"
    buckets = ", ".join(f"SUM(CASE WHEN s <= {float(b)!r} THEN 1 ELSE 0 END)" for b in LATENCY_BUCKETS)
    bounds = [("delivered_at >= %s", since), ("delivered_at < %s", until)]
    where = " AND ".join(["status = 'delivered' AND delivered_at IS NOT NULL"] + [c for c, v in bounds if v])
    sql = (
        f"WITH t AS MATERIALIZED (SELECT {hour} AS h, {seconds} AS s "  # noqa: S608 (no user input in the SQL)  # nosec B608
        f"FROM {Delivery._meta.db_table} WHERE {where}) "
        f"SELECT h, {buckets}, COUNT(*), COALESCE(SUM(s), 0) FROM t GROUP BY h"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [v for _, v in bounds if v])
        rows = cursor.fetchall()
    return {
        (None if row[0] is None else int(row[0])): ([int(n or 0) for n in row[1:-1]], float(row[-1])) for row in rows
    }


def quantile(q: float, cumulative: Sequence[int]) -> float | None:
    """The q-quantile of a cumulative histogram over LATENCY_BUCKETS (+Inf last), interpolated
    inside its bucket as Prometheus' histogram_quantile does; None without observations."""
    total = cumulative[-1] if cumulative else 0
    if not total:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0
    for bound, count in zip((*LATENCY_BUCKETS, math.inf), cumulative, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            inside = count - lower_count
            return lower_bound + (bound - lower_bound) * ((rank - lower_count) / inside if inside else 1)
        lower_bound, lower_count = bound, count
    return lower_bound


def per_hour(rows: QuerySet[Any], column: str, key: str, since: dt.datetime) -> dict[tuple[int, str], int]:
    """Rows since `since` counted per (epoch hour of `column`, `key`)."""
    hour = RawSQL(_epoch_hour(column), [])  # noqa: S611 (a column name of ours)  # nosec B611
    recent = rows.filter(**{f"{column}__gte": since}).annotate(hour=hour)
    return {(int(hour), value): n for (hour, value), n in count_by(recent, "hour", key).items()}


def counts_since(since: dt.datetime, recent: dt.datetime) -> dict[str, dict[str, dict[str, int]]]:
    """Emails by decision, deliveries by status and attempts by outcome since `since` and since `recent`."""
    tables: dict[str, tuple[QuerySet[Any], str, str]] = {
        "emails": (Email.objects.all(), "received_at", "decision"),
        # Listing the statuses lets the (status, created) index serve each one's range.
        "deliveries": (Delivery.objects.filter(status__in=[s for s, _ in DELIVERY_STATUSES]), "created", "status"),
        "attempts": (Attempt.objects.all(), "started", "outcome"),
    }
    result: dict[str, dict[str, dict[str, int]]] = {}
    for name, (table, column, key) in tables.items():
        rows = (
            table.filter(**{f"{column}__gte": since})
            .order_by()
            .values(key)
            .annotate(n=Count("id"), recent=Count("id", filter=Q(**{f"{column}__gte": recent})))
        )
        result[name] = {
            "wide": {row[key]: row["n"] for row in rows},
            "recent": {row[key]: row["recent"] for row in rows if row["recent"]},
        }
    return result
