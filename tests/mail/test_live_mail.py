"""Mail arriving while a backlog is recorded goes first, and its deliveries before the backlog's."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from delivery.models import Delivery
from mail import parsers, pipeline, poller
from mail.models import Email, Mailbox
from mail.pipeline import Fetched, record_batch
from tests.mail.corpus import message

pytestmark = pytest.mark.django_db(transaction=True)


def order(n: int) -> bytes:
    return message(f"Commande {n}", f"https://fromsmash.com/Order{n}x", msgid=f"<order{n}@x>")


def test_deliveries_of_a_large_batch_are_a_backlog_and_of_a_small_one_are_not(webhook_receiver):
    box = Mailbox.objects.create(name="orders", host="imap.example", username="u", password="p")
    big = record_batch(box, 1, [Fetched(n, order(n)) for n in range(1, pipeline.BACKLOG_BATCH + 2)])
    small = record_batch(box, 1, [Fetched(100, order(100))])
    assert set(Delivery.objects.filter(email__in=big).values_list("backlog", flat=True)) == {True}
    assert set(Delivery.objects.filter(email__in=small).values_list("backlog", flat=True)) == {False}


@pytest.fixture(params=["parsed in the poller", "parsed in a parser process"])
def live_during_sync(request, imap, monkeypatch) -> int:
    """Batches of five; a new order arrives while the first batch is fetched. The batches are
    parsed in the poller, or in a child process as a large backlog is (mail/parsers.py).
    Returns how many backlog batches are written before the live order: the first one when it
    is parsed in the poller, none when it is still in the child as the live order comes."""
    apart = request.param == "parsed in a parser process"
    if apart:
        monkeypatch.setattr(parsers, "PARSE_APART_ABOVE", 0)
        monkeypatch.setattr(parsers, "PARSE_APART_DATABASES", ("sqlite", "postgresql"))
    monkeypatch.setattr(poller, "BATCH_MESSAGES", 5)
    monkeypatch.setattr(pipeline, "BACKLOG_BATCH", 2)
    for n in range(15):
        imap.append(order(n))
    real_fetch = poller.Poller._fetch
    arrived: list[bool] = []

    def fetch_while_mail_arrives(self, client, batch):
        if not arrived:
            imap.append(order(99))
            arrived.append(True)
        return real_fetch(self, client, batch)

    monkeypatch.setattr(poller.Poller, "_fetch", fetch_while_mail_arrives)
    return 0 if apart else 1


@pytest.mark.slow
def test_mail_arriving_during_a_long_sync_is_recorded_before_the_rest_of_the_backlog(mailbox, live_during_sync):
    call_command("poll", once=True)
    recorded = list(Email.objects.order_by("id").values_list("message_id", flat=True))
    before = 5 * live_during_sync  # the backlog written before the live order
    backlog = [f"<order{n}@x>" for n in range(15)]
    assert recorded == [*backlog[:before], "<order99@x>", *backlog[before:]]
    live = Delivery.objects.get(email__message_id="<order99@x>")
    assert not live.backlog
    assert Delivery.objects.filter(backlog=True).count() == 15
    mailbox.refresh_from_db()
    assert mailbox.last_uid == Email.objects.get(message_id="<order99@x>").uid


@pytest.mark.slow
def test_the_saved_position_never_passes_backlog_not_yet_recorded(mailbox, imap, live_during_sync, monkeypatch):
    real_flag = poller.Poller._flag

    def connection_lost_after_the_live_mail(self, client, emails):
        if any(e.message_id == "<order99@x>" for e in emails):
            raise ConnectionResetError("the IMAP server closed the connection")
        return real_flag(self, client, emails)

    monkeypatch.setattr(poller.Poller, "_flag", connection_lost_after_the_live_mail)
    started_from = mailbox.last_uid
    with pytest.raises(CommandError):
        call_command("poll", once=True)
    mailbox.refresh_from_db()
    recorded = set(Email.objects.values_list("uid", flat=True))
    live = Email.objects.get(message_id="<order99@x>").uid
    assert live > mailbox.last_uid  # the live one is recorded, yet the position is not past it…
    missing = set(imap.flags()) - recorded
    assert missing and mailbox.last_uid < min(missing)  # …nor past any message not recorded…
    assert all(uid in recorded for uid in imap.flags() if uid <= mailbox.last_uid)  # …and all before it are
    backlog_uids = sorted(imap.flags())[:15]
    # Past the first backlog batch when it was written and flagged before the live one; else
    # nothing was flagged yet, and the position has not moved.
    assert mailbox.last_uid == (backlog_uids[4] if live_during_sync else started_from)
    monkeypatch.setattr(poller.Poller, "_flag", real_flag)
    call_command("poll", once=True)
    assert Email.objects.count() == 16  # the rest of the backlog, and the live mail once
    mailbox.refresh_from_db()
    assert mailbox.last_uid == max(imap.flags())
