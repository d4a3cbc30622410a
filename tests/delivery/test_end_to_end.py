"""Real processes: IMAP → poller → signed webhook, and a worker killed while sending."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from standardwebhooks import Webhook

from delivery.models import Delivery, Endpoint
from mail.models import Email
from tests.conftest import ROOT, base_env, child_database_env, wait_until
from tests.delivery.receiver import Receiver, Reply
from tests.mail.corpus import eml
from tests.mail.test_poller import PollerThread

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_an_order_email_becomes_a_signed_webhook(mailbox, imap, webhook_receiver):
    receiver = webhook_receiver
    with PollerThread(mailbox):
        wait_until(lambda: mailbox.__class__.objects.get().last_good_cycle, message="first cycle")
        imap.append(eml("recadrage_dropbox_folder.eml"))
        wait_until(lambda: receiver.received, message="webhook received")
    secret = str(Endpoint.objects.get().secret)
    payload = Webhook(secret).verify(receiver.received[0].body, receiver.received[0].headers)
    assert payload["detector"] == "recadrage"
    assert payload["delivery_time"] == "le 03/09/2026 à 09h05"
    assert payload["delivery_links"] == [
        {"provider": "dropbox", "raw_url": "https://www.dropbox.com/scl/fo/abc123def/AAbbCCdd?rlkey=k3y9x&dl=0"}
    ]
    assert Email.objects.get().decision == "delivered"


def qcluster(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        env=env,
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_worker_killed_while_sending_completes_after_restart_without_duplicates(box, local_targets, settings):
    from django_q.conf import Conf
    from django_q.tasks import async_task

    from tests.delivery.conftest import make_email

    env = base_env(
        DEBUG="true",
        WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
        DELIVERY_CLAIM_MARGIN_SECONDS="1",
        Q_WORKERS="1",
        **child_database_env(),
    )
    with Receiver() as receiver:
        receiver.then(Reply(delay=30))  # the first request hangs: the worker is killed meanwhile
        Endpoint.objects.create(name="app", url=receiver.url, is_default=True, timeout_seconds=2)
        from delivery.outbox import plan

        Conf.SYNC = False  # jobs go to the broker, for the real cluster
        try:
            first = qcluster(env)
            [delivery] = plan(make_email(box))  # enqueues the sender job on commit
            wait_until(lambda: receiver.received, timeout=60, message="first attempt in flight")
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
            time.sleep(3.5)  # the killed worker's claim (timeout 2 s + margin 1 s) expires
            second = qcluster(env)
            try:
                async_task("delivery.tasks.send_due")
                wait_until(lambda: Delivery.objects.get().status == "delivered", timeout=60, message="delivered")
            finally:
                second.send_signal(signal.SIGTERM)  # the main process only: it stops its workers
                second.wait(timeout=60)
        finally:
            Conf.SYNC = True
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert ids == [delivery.webhook_id, delivery.webhook_id]  # the in-flight try, then the one that landed


def test_a_retry_is_sent_at_its_time_by_the_cluster_not_at_the_next_minute(box, local_targets):
    from django_q.conf import Conf

    from delivery.outbox import plan
    from tests.delivery.conftest import make_email

    env = base_env(
        DEBUG="true", WEBHOOK_ALLOW_PRIVATE_TARGETS="true", DELIVERY_RETRY_DELAYS="3,300", **child_database_env()
    )
    with Receiver() as receiver:
        receiver.then(Reply(503, {"error": "busy"}))
        Endpoint.objects.create(name="app", url=receiver.url, is_default=True)
        Conf.SYNC = False  # jobs go to the broker, for the real cluster
        try:
            cluster = qcluster(env)
            try:
                [delivery] = plan(make_email(box))  # enqueues the sender on commit
                wait_until(lambda: len(receiver.received) == 2, timeout=30, message="the retry")
            finally:
                cluster.send_signal(signal.SIGTERM)
                cluster.wait(timeout=60)
        finally:
            Conf.SYNC = True
    first, retry = receiver.received
    assert 2.7 <= retry.at - first.at < 6  # 3 s ±10 %, not the once-a-minute run
    assert Delivery.objects.get().status == "delivered"
    assert retry.headers["webhook-id"] == delivery.webhook_id
