"""All-time totals of final rows, counted once per process and topped up: always what a full count says."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from delivery.models import Attempt, Delivery
from signalserver import aggregates, settled
from tests.delivery.conftest import make_email

pytestmark = pytest.mark.django_db
START = dt.datetime(2026, 11, 4, 10, 0, tzinfo=dt.UTC)


def deliver(box, endpoint, at: dt.datetime, seconds: float, outcomes=("delivered",)) -> None:
    delivery = Delivery.objects.create(
        email=make_email(box),
        endpoint=endpoint,
        status="delivered",
        created=at,
        delivered_at=at + dt.timedelta(seconds=seconds),
    )
    for outcome in outcomes:
        Attempt.objects.create(delivery=delivery, outcome=outcome, started=at)


def full_count() -> tuple[dict[tuple[object, ...], int], aggregates.Histogram]:
    return aggregates.attempts_by_id(0, None), aggregates.latency_histogram()


def test_the_totals_equal_a_full_count_as_rows_settle(box, endpoint, time_machine):
    time_machine.move_to(START, tick=False)
    deliver(box, endpoint, START - dt.timedelta(hours=2), 0.4, ("failed", "delivered"))
    deliver(box, endpoint, START - dt.timedelta(minutes=1), 40)
    assert settled.attempts_and_latency(timezone.now()) == full_count()
    for minutes in (5, 20, 40, 90):  # rows written as time passes settle one scrape after another
        time_machine.move_to(START + dt.timedelta(minutes=minutes), tick=False)
        deliver(box, endpoint, timezone.now(), 2, ("failed", "failed", "delivered"))
        assert settled.attempts_and_latency(timezone.now()) == full_count()
    attempts, (cumulative, _) = settled.attempts_and_latency(timezone.now())
    assert attempts == {(endpoint.pk, "delivered"): 6, (endpoint.pk, "failed"): 9}
    assert cumulative[-1] == 6


def test_rows_are_read_once_then_only_the_recent_ones(box, endpoint, time_machine):
    time_machine.move_to(START, tick=False)
    for i in range(20):
        deliver(box, endpoint, START - dt.timedelta(hours=3, minutes=i), 1)
    settled.attempts_and_latency(timezone.now())
    time_machine.move_to(START + dt.timedelta(minutes=1), tick=False)
    with CaptureQueriesContext(connection) as captured:
        settled.attempts_and_latency(timezone.now())
    assert len(captured) == 5  # the same queries as the first count, each over a narrow range
    sqls = [q["sql"] for q in captured.captured_queries]
    attempt_counts = [sql for sql in sqls if "GROUP BY" in sql and "delivery_attempt" in sql]
    assert len(attempt_counts) == 2 and all('"delivery_attempt"."id" >' in sql for sql in attempt_counts)
    latency = [sql for sql in sqls if sql.startswith("WITH t AS")]
    assert len(latency) == 2 and all("delivered_at >=" in sql for sql in latency)


def test_an_hourly_recount_follows_deleted_rows(box, endpoint, time_machine):
    time_machine.move_to(START, tick=False)
    deliver(box, endpoint, START - dt.timedelta(hours=2), 1)
    deliver(box, endpoint, START - dt.timedelta(hours=2), 1)
    assert settled.attempts_and_latency(timezone.now())[1][0][-1] == 2
    Delivery.objects.order_by("pk")[0].delete()  # e.g. its mailbox was removed
    time_machine.move_to(START + settled.RECOUNT + dt.timedelta(minutes=1), tick=False)
    assert settled.attempts_and_latency(timezone.now()) == full_count()
