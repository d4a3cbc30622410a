"""The dashboard's charts: what each one counts, and a constant number of queries at 100,000 emails."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from delivery.models import Attempt, Delivery, Endpoint
from signalserver import charts
from tests.delivery.conftest import make_email

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 11, 4, 10, 30, tzinfo=dt.UTC)  # 11:30 in Paris


@pytest.fixture
def browser(db) -> Client:
    client = Client()
    client.force_login(User.objects.create_user("alice", password="pw", is_staff=True))
    return client


def at(hours_ago: float, minutes: int = 0) -> dt.datetime:
    return NOW - dt.timedelta(hours=hours_ago, minutes=minutes)


def test_emails_per_hour_are_stacked_by_decision(box, time_machine):
    time_machine.move_to(NOW, tick=False)
    for decision in ("delivered", "delivered", "skipped_reply"):
        make_email(box, decision=decision, received_at=at(0, 10))
    make_email(box, decision="failed", received_at=at(5))
    make_email(box, decision="delivered", received_at=at(25))  # outside the 24 hours
    emails = charts.charts().emails
    assert emails.total == 4
    assert dict(emails.legend) == {"delivered": 2, "failed": 1, "skipped_reply": 1}
    titles = sorted(bar.title for bar in emails.bars)
    assert titles == ["06:00: 1 email failed", "11:00: 1 email skipped_reply", "11:00: 2 emails delivered"]
    last_column = [bar for bar in emails.bars if bar.title.startswith("11:00")]
    delivered, reply = sorted(last_column, key=lambda bar: -bar.y)
    assert delivered.y + delivered.height == pytest.approx(charts.HEIGHT)  # stacked from the axis up
    assert reply.y + reply.height == pytest.approx(delivered.y)
    assert [t.label for t in emails.x_ticks] == ["12:00", "18:00", "00:00", "06:00"]


def test_deliveries_per_hour_by_status_and_time_to_delivery(box, endpoint, time_machine):
    time_machine.move_to(NOW, tick=False)
    for seconds in (0.3, 0.4, 0.6, 40):
        email = make_email(box, decision="delivered")
        Delivery.objects.create(
            email=email,
            endpoint=endpoint,
            status="delivered",
            created=at(1) - dt.timedelta(seconds=seconds),
            delivered_at=at(1),
        )
    Delivery.objects.create(email=make_email(box), endpoint=endpoint, status="held", created=at(2))
    result = charts.charts()
    assert dict(result.deliveries.legend) == {"delivered": 4, "held": 1}
    latency = result.latency
    assert latency.delivered == 4
    assert latency.p50 is not None and 0.25 < latency.p50 <= 0.5
    assert latency.p95 is not None and 30 < latency.p95 <= 60
    assert latency.p50_line.count(",") == 1 and latency.p95_line.count(",") == 1  # one hour had deliveries


def test_each_endpoint_success_rate_counts_its_attempts_of_the_last_day(box, endpoint, time_machine):
    time_machine.move_to(NOW, tick=False)
    other = Endpoint.objects.create(name="archive", url="https://archive.example/hook")
    mine = Delivery.objects.create(email=make_email(box), endpoint=endpoint, status="delivered")
    theirs = Delivery.objects.create(email=make_email(box), endpoint=other, status="failed")
    for outcome in ("failed", "failed", "failed", "delivered"):
        Attempt.objects.create(delivery=mine, outcome=outcome, started=at(3))
    Attempt.objects.create(delivery=theirs, outcome="failed", started=at(2))
    Attempt.objects.create(delivery=theirs, outcome="delivered", started=at(30))  # too old
    rates = {r.endpoint: (r.delivered, r.attempts, r.percent) for r in charts.charts().rates}
    assert rates == {"app": (1, 4, 25.0), "archive": (0, 1, 0.0)}


def test_the_dashboard_shows_the_charts(browser, box, endpoint):
    make_email(box, decision="delivered", received_at=timezone.now())
    page = browser.get("/").content.decode()
    assert 'id="charts"' in page and "Emails per hour" in page and "Endpoint success rate" in page
    assert '<rect class="bar delivered"' in page
    assert "charts.css" in page


@pytest.mark.slow
def test_the_dashboard_query_count_is_the_same_at_100000_emails(browser):
    from bench.seed import seed

    def queries(query: str = "") -> int:
        with CaptureQueriesContext(connection) as captured:
            assert browser.get("/" + query).status_code == 200
        return len(captured)

    views = ("", "?q=Lot&page=5", "?q=Lot+7", "?decision=delivered&page=8")
    seed(300, days=1)  # every kind of row, held and failed deliveries included
    few = [queries(view) for view in views]
    seed(100_000 - 300, days=60)
    assert [queries(view) for view in views] == few
    # Far pages, beyond the count's bound, are read by their keys alone: no count at all.
    assert queries("?q=Lot&page=50") == few[1] - 1
    assert queries("?decision=delivered&page=2000") == few[3] - 1


def test_the_charts_are_computed_once_per_period_and_shared_through_the_cache(browser, box, settings, time_machine):
    from django.core.cache import cache

    cache.clear()
    settings.DASHBOARD_CHARTS_CACHE_SECONDS = 60
    time_machine.move_to(NOW, tick=False)
    make_email(box, decision="delivered", received_at=at(0, 5))

    def chart_queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert browser.get("/").status_code == 200
        return sum("strftime" in q["sql"] or "EXTRACT(EPOCH" in q["sql"] for q in captured.captured_queries)

    assert chart_queries() == 3  # emails and deliveries per hour, time to delivery
    make_email(box, decision="failed", received_at=at(0, 1))
    assert chart_queries() == 0
    assert 'Emails per hour <span class="muted small">1 in 24 h' in charts.panel()  # within the minute, cached
    time_machine.move_to(NOW + dt.timedelta(seconds=61), tick=False)
    assert chart_queries() == 3
    assert 'Emails per hour <span class="muted small">2 in 24 h' in charts.panel()


def test_the_dashboard_draws_its_charts_when_the_cache_is_down(browser, box, settings, monkeypatch, caplog):
    import redis
    from django.core.cache import cache

    settings.DASHBOARD_CHARTS_CACHE_SECONDS = 60

    def unavailable(*args, **kwargs):
        raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(cache, "get", unavailable)
    make_email(box, decision="delivered", received_at=timezone.now())
    page = browser.get("/").content.decode()
    assert '<rect class="bar delivered"' in page
    assert "the cache is unavailable (Connection refused)" in caplog.text
