"""/metrics and /api/metrics: figures read from the database, for any process to serve."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from delivery.models import Attempt, Delivery, Endpoint, LinkTransfer
from mail.models import Mailbox, PollCycleBucket, PollerLease
from signalserver import aggregates
from signalserver.models import ApiToken, WorkerHeartbeat
from tests.delivery.conftest import make_email

pytestmark = pytest.mark.django_db


def scrape(client: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by (name, sorted labels)."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def delivery(email, endpoint, status: str, **fields) -> Delivery:
    return Delivery.objects.create(email=email, endpoint=endpoint, status=status, **fields)


@pytest.fixture
def history(box, endpoint) -> dict[str, object]:
    """Two emails delivered (one in 0.4 s, one in 40 s), one held past its release, one failed."""
    now = timezone.now()
    archive = Endpoint.objects.create(name="archive", url="https://archive.example/hook")
    first = make_email(box, decision="delivered")
    second = make_email(box, decision="delivered")
    held = make_email(box, decision="held")
    failed = make_email(box, decision="failed")
    make_email(box, decision="skipped_reply")
    fast = delivery(first, endpoint, "delivered", created=now - dt.timedelta(seconds=0.4), delivered_at=now)
    delivery(second, archive, "delivered", created=now - dt.timedelta(seconds=40), delivered_at=now)
    delivery(held, endpoint, "held", next_attempt_at=now - dt.timedelta(minutes=20))
    dead = delivery(failed, endpoint, "failed", next_attempt_at=now - dt.timedelta(hours=1))
    Attempt.objects.create(delivery=fast, outcome="delivered", status_code=200)
    for code in (500, 502):
        Attempt.objects.create(delivery=dead, outcome="failed", status_code=code)
    for status in ("success", "success", "failed", "running"):
        LinkTransfer.objects.create(
            email=first, source_url="u", normalized_url="u", provider="dropbox", status=status, deadline=now
        )
    return {"now": now, "archive": archive}


def test_it_counts_emails_deliveries_attempts_and_transfers_from_the_rows(client, history, box):
    samples = scrape(client)
    assert samples[("signalserver_emails", (("decision", "delivered"), ("mailbox", "orders")))] == 2
    assert samples[("signalserver_emails", (("decision", "skipped_reply"), ("mailbox", "orders")))] == 1
    assert samples[("signalserver_emails_received_total", (("mailbox", "orders"),))] == 5
    assert samples[("signalserver_deliveries", (("endpoint", "app"), ("status", "failed")))] == 1
    assert samples[("signalserver_deliveries", (("endpoint", "archive"), ("status", "delivered")))] == 1
    assert samples[("signalserver_delivery_attempts_total", (("endpoint", "app"), ("outcome", "failed")))] == 2
    assert samples[("signalserver_delivery_attempts_total", (("endpoint", "app"), ("outcome", "delivered")))] == 1
    assert samples[("signalserver_r2_transfers_total", (("outcome", "success"),))] == 2
    assert samples[("signalserver_r2_transfers_total", (("outcome", "failed"),))] == 1
    assert samples[("signalserver_r2_transfers_in_progress", ())] == 1


def test_queue_gauges_show_held_due_and_failed_deliveries(client, history):
    samples = scrape(client)
    assert samples[("signalserver_deliveries_held", ())] == 1
    assert samples[("signalserver_deliveries_failed", ())] == 1
    assert samples[("signalserver_deliveries_due", ())] == 1  # the held one whose release time passed
    assert 20 * 60 <= samples[("signalserver_deliveries_held_overdue_seconds", ())] < 21 * 60


def test_the_latency_histogram_counts_each_delivered_delivery_in_its_bucket(client, history):
    samples = scrape(client)

    def bucket(le: str) -> float:
        return samples[("signalserver_delivery_latency_seconds_bucket", (("le", le),))]

    assert bucket("0.25") == 0
    assert bucket("0.5") == 1
    assert bucket("30.0") == 1
    assert bucket("60.0") == 2
    assert bucket("+Inf") == 2
    assert samples[("signalserver_delivery_latency_seconds_count", ())] == 2
    assert samples[("signalserver_delivery_latency_seconds_sum", ())] == pytest.approx(40.4, abs=0.01)


def test_mailbox_metrics_show_cycles_reconnects_lease_and_age(client, box, time_machine):
    time_machine.move_to(dt.datetime(2026, 11, 4, 10, 0, tzinfo=dt.UTC), tick=False)  # a Wednesday, 11:00 in Paris
    for seconds in (0.03, 0.2, 7):
        box.record_good_cycle(seconds)
    box.record_error("ConnectionRefusedError: [Errno 111] Connection refused")
    box.record_error("timeout after 30 s")
    PollerLease.objects.create(
        name=box.lease_name, holder="t pid=1 host=w", expires_at=timezone.now() + dt.timedelta(minutes=5)
    )
    quiet = Mailbox.objects.create(name="quiet", host="h", username="u", password="p", active_days="6")
    time_machine.move_to(dt.datetime(2026, 11, 4, 10, 2, tzinfo=dt.UTC), tick=False)
    samples = scrape(client)
    orders, other = (("mailbox", "orders"),), (("mailbox", "quiet"),)
    assert samples[("signalserver_poll_cycle_duration_seconds_count", orders)] == 3
    assert samples[("signalserver_poll_cycle_duration_seconds_sum", orders)] == pytest.approx(7.23)
    assert samples[("signalserver_poll_cycle_duration_seconds_bucket", (("le", "0.05"), ("mailbox", "orders")))] == 1
    assert samples[("signalserver_poll_cycle_duration_seconds_bucket", (("le", "0.25"), ("mailbox", "orders")))] == 2
    assert samples[("signalserver_poll_cycle_duration_seconds_count", other)] == 0
    assert samples[("signalserver_imap_reconnects_total", orders)] == 2
    assert samples[("signalserver_poller_lease_held", orders)] == 1
    assert samples[("signalserver_poller_lease_held", other)] == 0
    assert samples[("signalserver_mailbox_last_good_cycle_age_seconds", orders)] == 120
    assert samples[("signalserver_mailbox_active", orders)] == 1
    assert samples[("signalserver_mailbox_active", other)] == 0  # Sundays only
    assert PollCycleBucket.objects.filter(mailbox=quiet).count() == 0


def test_health_and_the_job_cluster_heartbeat_are_exported(client, time_machine):
    time_machine.move_to(dt.datetime(2026, 11, 4, 10, 0, tzinfo=dt.UTC), tick=False)
    WorkerHeartbeat.beat("qcluster@w", "w", 1)
    time_machine.move_to(dt.datetime(2026, 11, 4, 10, 1, tzinfo=dt.UTC), tick=False)
    samples = scrape(client)
    assert samples[("signalserver_qcluster_heartbeat_age_seconds", ())] == 60
    assert samples[("signalserver_health_ok", (("check", "qcluster"),))] == 1
    assert samples[("signalserver_healthy", ())] == 1
    WorkerHeartbeat.objects.all().delete()
    samples = scrape(client)
    assert samples[("signalserver_healthy", ())] == 0
    assert samples[("signalserver_health_ok", (("check", "qcluster"),))] == 0


def test_the_scrape_costs_the_same_number_of_queries_for_any_history(
    client, box, endpoint, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        client.get("/metrics")
    for _ in range(30):
        email = make_email(box, decision="delivered")
        d = delivery(email, endpoint, "delivered", delivered_at=timezone.now())
        Attempt.objects.create(delivery=d, outcome="delivered")
    with CaptureQueriesContext(connection) as many:
        client.get("/metrics")
    assert len(many) == len(few)


def test_metrics_token_guards_metrics_when_set(client, settings):
    settings.METRICS_TOKEN = "m3trics-t0ken-for-prometheus"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer m3trics-t0ken-for-prometheus").status_code == 200
    _, token = ApiToken.issue("prometheus", ["metrics"])
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    _, other = ApiToken.issue("deployer", ["deploy"])
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 401


def test_metrics_are_open_without_a_token_and_exempt_from_the_https_redirect(client, settings):
    settings.METRICS_TOKEN = ""
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/metrics").status_code == 200


def test_api_metrics_needs_staff_or_a_metrics_token(client):
    assert client.get("/api/metrics").status_code == 401
    operator = User.objects.create_user("viewer", password="pw", is_staff=False)
    client.force_login(operator)
    assert client.get("/api/metrics").status_code == 401
    _, token = ApiToken.issue("jq", ["metrics"])
    assert Client().get("/api/metrics", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    _, other = ApiToken.issue("r2", ["test_r2"])
    assert Client().get("/api/metrics", HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 401


def test_api_metrics_summarises_the_last_hour_and_day_mailboxes_and_queue(admin_client, history, box):
    now = history["now"]
    make_email(box, decision="skipped_sender", received_at=now - dt.timedelta(hours=3))
    make_email(box, decision="skipped_sender", received_at=now - dt.timedelta(days=3))
    box.record_good_cycle(0.1)
    PollerLease.objects.create(
        name=box.lease_name, holder="abc pid=7 host=worker-1", expires_at=now + dt.timedelta(minutes=1)
    )
    held = Delivery.objects.get(status="held")
    body = admin_client.get("/api/metrics").json()
    assert body["last_hour"]["emails"] == {"delivered": 2, "held": 1, "failed": 1, "skipped_reply": 1}
    assert body["last_24_hours"]["emails"] == {
        "delivered": 2,
        "held": 1,
        "failed": 1,
        "skipped_reply": 1,
        "skipped_sender": 1,
    }
    assert body["last_24_hours"]["deliveries"] == {"delivered": 2, "held": 1, "failed": 1}
    assert body["last_24_hours"]["attempts"] == {"delivered": 1, "failed": 2}
    [mailbox] = body["mailboxes"]
    assert mailbox["name"] == "orders" and mailbox["lease_holder"] == "abc pid=7 host=worker-1"
    assert mailbox["last_good_cycle"] is not None and mailbox["last_good_cycle_age_seconds"] < 5
    assert body["queue"] == {
        "due": 1,
        "pending": 0,
        "held": 1,
        "failed": 1,
        "oldest_held_release": held.next_attempt_at.isoformat() if held.next_attempt_at else None,
    }


def test_quantiles_are_interpolated_inside_their_bucket_like_prometheus():
    bounds = len(aggregates.LATENCY_BUCKETS) + 1
    assert aggregates.quantile(0.5, [0] * bounds) is None
    # 10 observations, all between 0.5 s and 1 s: the median is halfway through that bucket.
    cumulative = [0, 0] + [10] * (bounds - 2)
    assert aggregates.quantile(0.5, cumulative) == pytest.approx(0.75)
    assert aggregates.quantile(0.95, cumulative) == pytest.approx(0.975)
    # Beyond the last finite bound, the answer is that bound (as histogram_quantile does).
    assert aggregates.quantile(0.5, [0] * (bounds - 1) + [4]) == aggregates.LATENCY_BUCKETS[-1]
