"""Metrics and health against the real pipeline: Dovecot → poller → signed webhook, and a stopped IMAP server."""

from __future__ import annotations

import pytest
from django.db.models import Count
from django.test import Client
from django.utils import timezone

from delivery.models import Attempt, Delivery
from mail.models import Email, Mailbox
from signalserver.models import WorkerHeartbeat
from tests.conftest import free_port, wait_until
from tests.mail.conftest import ImapAccount, always_active, start_imap_server, stop_imap_server
from tests.mail.corpus import eml
from tests.mail.test_poller import PollerThread
from tests.signalserver.test_metrics import scrape

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def rows(queryset, *keys: str) -> dict[tuple[str, ...], int]:
    counted = queryset.order_by().values(*keys).annotate(n=Count("id")).values_list(*keys, "n")
    return {tuple(str(v) for v in row[:-1]): row[-1] for row in counted}


def exported(samples, name: str, *labels: str) -> dict[tuple[str, ...], int]:
    found = {}
    for (sample, pairs), value in samples.items():
        if sample == name and value:
            found[tuple(dict(pairs)[label] for label in labels)] = int(value)
    return found


def test_after_a_real_pipeline_run_each_counter_equals_the_rows(mailbox, imap, webhook_receiver):
    with PollerThread(mailbox):
        wait_until(lambda: Mailbox.objects.get().last_good_cycle, message="first cycle")
        imap.append(eml("recadrage_dropbox_folder.eml"))
        imap.append(eml("desabo_html_only.eml"))
        imap.append(eml("reply_lot42.eml"))
        imap.append(eml("wetransfer_notification.eml"))
        wait_until(lambda: Email.objects.count() == 4, message="four emails")
        wait_until(lambda: len(webhook_receiver.received) == Delivery.objects.count(), message="webhooks received")
        wait_until(lambda: not Delivery.objects.exclude(status="delivered").exists(), message="all delivered")
    samples = scrape(Client())

    assert exported(samples, "signalserver_emails", "mailbox", "decision") == rows(
        Email.objects.all(), "mailbox__name", "decision"
    )
    assert exported(samples, "signalserver_emails_received_total", "mailbox") == {("orders",): 4}
    assert exported(samples, "signalserver_deliveries", "endpoint", "status") == rows(
        Delivery.objects.all(), "endpoint__name", "status"
    )
    assert exported(samples, "signalserver_delivery_attempts_total", "endpoint", "outcome") == rows(
        Attempt.objects.all(), "delivery__endpoint__name", "outcome"
    )
    delivered = Delivery.objects.filter(status="delivered").count()
    assert delivered >= 2 and samples[("signalserver_delivery_latency_seconds_count", ())] == delivered
    assert samples[("signalserver_delivery_latency_seconds_bucket", (("le", "+Inf"),))] == delivered
    cycles = samples[("signalserver_poll_cycle_duration_seconds_count", (("mailbox", "orders"),))]
    assert cycles >= 2  # the first pass, and one after the new mail
    assert samples[("signalserver_poll_cycle_duration_seconds_sum", (("mailbox", "orders"),))] > 0
    assert samples[("signalserver_imap_reconnects_total", (("mailbox", "orders"),))] == 0
    assert samples[("signalserver_poller_lease_held", (("mailbox", "orders"),))] == 0  # released on stop
    assert samples[("signalserver_deliveries_due", ())] == 0


def test_a_mailbox_whose_imap_server_stops_turns_health_503_and_back(db, tmp_path, settings):
    settings.HEALTH_MAILBOX_MAX_AGE_SECONDS = 4
    settings.IMAP_TIMEOUT_SECONDS = 2
    directory, port, ssl_port = str(tmp_path / "imap"), free_port(), free_port()
    env = start_imap_server(directory, port, ssl_port)
    account = ImapAccount("127.0.0.1", port, env["IMAP_USER"], "secret")
    server = {"host": "127.0.0.1", "port": port, "use_ssl": False}
    Mailbox.objects.create(**always_active(name="watched", **server, username=account.username, password="secret"))
    client = Client()

    def health() -> tuple[int, list[str]]:
        WorkerHeartbeat.beat("qcluster@test", "test", 1)  # no cluster runs here; only the mailbox is under test
        response = client.get("/health")
        return response.status_code, response.json()["failed"]

    box = Mailbox.objects.get()
    try:
        with PollerThread(box):
            wait_until(lambda: Mailbox.objects.get().last_good_cycle, timeout=30, message="a first good cycle")
            wait_until(lambda: health() == (200, []), timeout=30, message="healthy while connected")
            stop_imap_server(directory, port, ssl_port)
            wait_until(lambda: health() == (503, ["mailbox:watched"]), timeout=60, message="503 naming the mailbox")
            failed_at = timezone.now()
            box.refresh_from_db()
            # The configured age after the last good cycle (the check is polled every 0.1 s).
            assert box.last_good_cycle
            age = (failed_at - box.last_good_cycle).total_seconds()
            assert 4 < age < 4 + 3, f"503 came {age:.1f} s after the last good cycle"
            assert box.last_error
            start_imap_server(directory, port, ssl_port)
            wait_until(lambda: health() == (200, []), timeout=90, message="healthy again after the restart")
    finally:
        stop_imap_server(directory, port, ssl_port)
    samples = scrape(client)
    reconnects = samples[("signalserver_imap_reconnects_total", (("mailbox", "watched"),))]
    assert reconnects == Mailbox.objects.get().reconnects >= 1
