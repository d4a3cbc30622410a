"""Sending in batches: live mail first, one request per delivery, every outcome recorded together."""

from __future__ import annotations

import datetime as dt

import pytest
from standardwebhooks import Webhook

from delivery import sender
from delivery.models import Attempt, Delivery
from delivery.outbox import plan
from delivery.sender import claim_batch, claim_seconds
from delivery.tasks import send_due
from mail.models import Email
from tests.delivery.conftest import make_email
from tests.delivery.receiver import Reply

pytestmark = pytest.mark.django_db


def plan_emails(box, count: int, backlog: bool = False, tag: str = "e") -> list[Delivery]:
    deliveries = [d for n in range(count) for d in plan(make_email(box, identity=f"<{tag}{n}@x>"), kick=False)]
    Delivery.objects.filter(pk__in=[d.pk for d in deliveries]).update(backlog=backlog)
    return deliveries


def test_live_mail_is_claimed_before_an_older_backlog(box, endpoint, schedule):
    backlog = plan_emails(box, 5, backlog=True, tag="old")
    [live] = plan_emails(box, 1, tag="new")
    assert [d.pk for d in claim_batch(limit=3)] == [live.pk, backlog[0].pk, backlog[1].pk]
    assert [d.pk for d in claim_batch(limit=3)] == [d.pk for d in backlog[2:]]


def test_a_batch_sends_each_delivery_once_and_records_every_attempt(box, endpoint, schedule, receiver, settings):
    settings.DELIVERY_BATCH_SIZE = 4
    deliveries = plan_emails(box, 10)
    assert send_due() == 10
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert sorted(ids) == sorted(d.webhook_id for d in deliveries)
    for request in receiver.received:
        Webhook(str(endpoint.secret)).verify(request.body, request.headers)
    assert Attempt.objects.filter(outcome="delivered").count() == 10
    assert set(Delivery.objects.values_list("status", "attempt_count", "claimed_until")) == {("delivered", 1, None)}
    assert set(Email.objects.values_list("decision", flat=True)) == {"delivered"}


def test_one_failure_in_a_batch_retries_only_that_delivery(box, endpoint, schedule, receiver, monkeypatch):
    # One request at a time, so the receiver's answers go to the deliveries in order (a first
    # request slower than QUICK_ANSWER_SECONDS would send the other two at once, in any order).
    monkeypatch.setattr(sender, "QUICK_ANSWER_SECONDS", 60)
    receiver.then(Reply(200), Reply(503), Reply(200))
    first, failing, third = plan_emails(box, 3)
    send_due()
    statuses = dict(Delivery.objects.values_list("pk", "status"))
    assert statuses == {first.pk: "delivered", failing.pk: "pending", third.pk: "delivered"}
    failing.refresh_from_db()
    assert failing.attempt_count == 1 and "HTTP 503" in failing.last_error
    assert failing.email.decision == "retrying"  # not delivered yet, nor failed


def test_while_the_receiver_answers_at_once_a_batch_goes_one_request_at_a_time(
    box, endpoint, schedule, receiver, monkeypatch
):
    monkeypatch.setattr(sender, "QUICK_ANSWER_SECONDS", 60)
    receiver.default = Reply(delay=0.05)
    plan_emails(box, 6)
    send_due()
    assert len(receiver.received) == 6
    assert receiver.most_in_flight == 1


def test_once_an_answer_is_slow_the_rest_of_the_batch_goes_in_parallel(
    box, endpoint, schedule, receiver, settings, monkeypatch
):
    monkeypatch.setattr(sender, "QUICK_ANSWER_SECONDS", 0.01)
    settings.DELIVERY_CONCURRENCY = 4
    receiver.default = Reply(delay=0.3)
    deliveries = plan_emails(box, 9)
    send_due()
    assert sorted(r.headers["webhook-id"] for r in receiver.received) == sorted(d.webhook_id for d in deliveries)
    assert receiver.most_in_flight == 4
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}


def test_a_claim_lasts_as_long_as_sending_the_batch_may_take(settings):
    settings.DELIVERY_CONCURRENCY, settings.DELIVERY_CLAIM_MARGIN_SECONDS = 8, 30
    assert claim_seconds([30]) == 30 + 30
    assert claim_seconds([30] * 9) == 2 * 30 + 30  # the first alone, then eight at a time
    assert claim_seconds([5] * 49 + [30]) == (1 + 7) * 30 + 30


def test_a_batch_claimed_by_a_killed_worker_is_sent_once_its_claim_ends(
    box, endpoint, schedule, receiver, time_machine
):
    time_machine.move_to(dt.datetime(2026, 11, 3, 11, 0, tzinfo=dt.UTC), tick=False)
    deliveries = plan_emails(box, 5)
    claimed = claim_batch()  # ... and the worker dies before sending
    assert len(claimed) == 5 and claim_batch() == []
    claimed_until = max(d.claimed_until for d in claimed if d.claimed_until)
    time_machine.move_to(claimed_until + dt.timedelta(seconds=1), tick=False)
    send_due()
    assert sorted(r.headers["webhook-id"] for r in receiver.received) == sorted(d.webhook_id for d in deliveries)
