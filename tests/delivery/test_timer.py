"""A due retry wakes the sender at its time, not at the next once-a-minute run."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.db import connections
from django.utils import timezone

from delivery import timer
from delivery.models import Delivery, SenderWake
from delivery.outbox import plan
from delivery.tasks import send_due, wake_sender
from tests.delivery.conftest import make_email
from tests.delivery.receiver import Reply

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def failing_once(box, endpoint, schedule, receiver, settings) -> Delivery:
    """A delivery whose first attempt got a 503; its retry is due in about 2 s."""
    settings.DELIVERY_RETRY_DELAYS = [2, 300]
    receiver.then(Reply(503, {"error": "busy"}))
    [delivery] = plan(make_email(box))
    send_due()
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempt_count == 1
    return delivery


def test_a_failed_attempt_arms_the_timer_for_its_retry(failing_once, sender_timer):
    assert sender_timer  # a job was started to wait for it
    assert SenderWake.objects.get().wake_at == failing_once.next_attempt_at


def test_the_waiting_job_sends_the_retry_at_its_time(failing_once, receiver):
    due = failing_once.next_attempt_at
    assert due is not None
    assert wake_sender() == 1  # waits for the retry, sends it, then finds nothing more to wait for
    sent_at = timezone.now()
    failing_once.refresh_from_db()
    assert failing_once.status == "delivered" and len(receiver.received) == 2
    assert dt.timedelta(0) <= sent_at - due < dt.timedelta(seconds=1.5)
    assert SenderWake.objects.get().waiter == ""


def test_a_retry_beyond_the_horizon_is_left_to_a_scheduled_run(box, endpoint, schedule, sender_timer):
    [delivery] = plan(make_email(box), kick=False)
    later = timezone.now() + timer.HORIZON + dt.timedelta(minutes=5)
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=later)
    send_due()
    assert sender_timer == [] and not SenderWake.objects.filter(wake_at__isnull=False).exists()


def test_one_job_waits_however_many_retries_are_due(failing_once, box, endpoint):
    first_token, second_token = timer.new_token(), timer.new_token()
    assert timer.claim(first_token)
    assert wake_sender() == 0  # another job already waits: this one returns at once
    assert not timer.claim(second_token)
    timer.abandon(first_token)


def test_an_earlier_time_reaches_the_job_already_waiting(failing_once, box, endpoint, receiver, settings):
    """The waiting job reads the wake-up time every second: a sooner one is not missed."""
    Delivery.objects.filter(pk=failing_once.pk).update(next_attempt_at=timezone.now() + dt.timedelta(seconds=60))
    timer.arm(timezone.now() + dt.timedelta(seconds=60))
    results: list[int] = []

    def wait() -> None:
        try:
            results.append(wake_sender())
        finally:
            connections.close_all()

    waiting = threading.Thread(target=wait)
    waiting.start()
    time.sleep(1)
    soon = timezone.now() + dt.timedelta(seconds=1)
    Delivery.objects.filter(pk=failing_once.pk).update(next_attempt_at=soon)
    timer.arm(soon)
    deadline = time.monotonic() + 10
    while Delivery.objects.get(pk=failing_once.pk).status != "delivered" and time.monotonic() < deadline:
        time.sleep(0.05)
    delivered_after = timezone.now() - soon
    waiting.join(timeout=30)
    assert not waiting.is_alive() and results == [1]
    assert delivered_after < dt.timedelta(seconds=2)


def test_a_delivery_that_fell_due_while_the_sender_finished_is_sent_at_once(box, endpoint, schedule, sender_timer):
    [delivery] = plan(make_email(box), kick=False)  # due now: as if it fell due after the sender's last claim
    timer.arm(timer.next_due_at(timezone.now()))
    assert sender_timer
    started = time.monotonic()
    assert wake_sender() == 1
    assert time.monotonic() - started < 2
    assert Delivery.objects.get(pk=delivery.pk).status == "delivered"
