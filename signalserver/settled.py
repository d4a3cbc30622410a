"""The two all-time figures of /metrics that would read every row, counted once per process.

Webhook attempts are written once, and a delivery's `delivered_at` once. Rows older than
SETTLE are committed and final, so their totals (attempts by endpoint and outcome, the
received → delivered histogram) are counted once, then topped up at each scrape with the
rows that settled since; the recent rows are counted at every scrape. What /metrics
exports is always settled + recent: what a count of every row says. An hourly recount
follows what final rows may still undergo: a mailbox deleted with its emails, or a
delivered delivery resent from the admin.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from delivery.models import Attempt
from signalserver import aggregates

# Longer than any attempt can stay uncommitted (an endpoint's timeout is at most 300 s).
SETTLE = dt.timedelta(minutes=15)
RECOUNT = dt.timedelta(hours=1)


@dataclass
class Settled:
    attempts: Counter[tuple[Any, ...]]
    attempts_upto: int  # every attempt with this id or lower is final and counted
    latency: aggregates.Histogram
    latency_until: dt.datetime | None  # every delivery delivered before this is counted
    counted_at: dt.datetime


_settled: Settled | None = None
_lock = threading.Lock()


def forget() -> None:
    global _settled
    with _lock:
        _settled = None


def _final_attempt_id(cutoff: dt.datetime, at_least: int) -> int:
    """An attempt id below which every row is final: one written before `cutoff` (its insert and
    commit are one short transaction, so every lower id was committed before it)."""
    last = Attempt.objects.filter(started__lt=cutoff).order_by("-started").values_list("pk", flat=True).first()
    return max(last or 0, at_least)


def _top_up(now: dt.datetime) -> Settled:
    """Add what settled since the last scrape (everything, at the first scrape and each recount)."""
    global _settled
    cutoff = now - SETTLE
    previous = _settled
    if previous is None or now - previous.counted_at > RECOUNT or (previous.latency_until or cutoff) > cutoff:
        empty = ([0] * (len(aggregates.LATENCY_BUCKETS) + 1), 0.0)
        previous = Settled(Counter(), 0, empty, None, now)
    upto = _final_attempt_id(cutoff, previous.attempts_upto)
    attempts = previous.attempts + Counter(aggregates.attempts_by_id(previous.attempts_upto, upto))
    settled_latency = aggregates.latency_histogram(since=previous.latency_until, until=cutoff)
    latency = aggregates.add_histograms(previous.latency, settled_latency)
    _settled = Settled(attempts, upto, latency, cutoff, previous.counted_at)
    return _settled


def attempts_and_latency(now: dt.datetime) -> tuple[dict[tuple[Any, ...], int], aggregates.Histogram]:
    """All-time attempts by (endpoint, outcome) and the all-time latency histogram."""
    with _lock:
        settled = _top_up(now)
        recent_attempts = aggregates.attempts_by_id(settled.attempts_upto, None)
        recent_latency = aggregates.latency_histogram(since=settled.latency_until)
    return dict(settled.attempts + Counter(recent_attempts)), aggregates.add_histograms(settled.latency, recent_latency)
