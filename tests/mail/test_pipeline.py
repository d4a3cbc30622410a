"""Recording emails: one row per message identity, with a decision and a reason."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mail.models import Email, Mailbox, RawMessage
from mail.pipeline import Fetched, record_batch
from tests.mail.corpus import eml, message

pytestmark = pytest.mark.django_db


@pytest.fixture
def box(webhook_receiver) -> Mailbox:
    return Mailbox.objects.create(name="orders", host="imap.example", username="u", password="p")


def record(box: Mailbox, *raws: bytes) -> list[Email]:
    return record_batch(box, 1, [Fetched(i + 1, raw) for i, raw in enumerate(raws)])


def test_an_order_is_accepted_with_its_detector_links_and_raw_bytes(box):
    [email] = record(box, eml("recadrage_dropbox_folder.eml"))
    assert email.decision == "accepted"
    assert email.detector == "recadrage"
    assert email.delivery_time == "le 03/09/2026 à 09h05"
    assert email.links == [
        {"provider": "dropbox", "raw_url": "https://www.dropbox.com/scl/fo/abc123def/AAbbCCdd?rlkey=k3y9x&dl=0"}
    ]
    assert "recadrage, 1 link(s)" in email.reason
    assert RawMessage.read(email.pk) == eml("recadrage_dropbox_folder.eml")
    assert email.sent_at == dt.datetime(2026, 11, 3, 8, 15, tzinfo=dt.UTC)


def test_the_same_message_twice_is_recorded_once(box):
    record(box, eml("desabo_urgent.eml"))
    assert record(box, eml("desabo_urgent.eml")) == []
    assert Email.objects.count() == 1


def test_identity_dedup_holds_within_one_batch(box):
    assert len(record(box, eml("desabo_urgent.eml"), eml("desabo_urgent.eml"))) == 1


def test_a_sender_outside_the_allow_list_is_recorded_without_body_or_raw(box):
    box.allowed_senders = "missions@media-solution.example\nplanning@agence.example"
    box.save()
    [email] = record(box, eml("wetransfer_notification.eml"))
    assert email.decision == "skipped_sender"
    assert "noreply@wetransfer.com" in email.reason
    assert email.text == "" and not RawMessage.objects.filter(email=email).exists()


def test_allowed_senders_are_compared_without_case(box):
    box.allowed_senders = "Missions@Media-Solution.example"
    box.save()
    assert record(box, eml("recadrage_dropbox_folder.eml"))[0].decision == "accepted"


def test_an_accepted_email_without_links_is_not_sent(box):
    [email] = record(box, eml("desabo_urgent.eml"))
    assert email.decision == "skipped_no_links"


def test_a_reply_is_skipped(box):
    [email] = record(box, eml("reply_lot42.eml"))
    assert email.decision == "skipped_reply"


def test_a_lot_group_is_handled_once(box):
    first = message("Média Solution - Missions Recadrage - Lot 50", "à faire pour 9h https://fromsmash.com/Lot50a")
    again = message(
        "Média Solution - Missions Recadrage - Lot 50 (rappel)", "à faire pour 10h https://fromsmash.com/b50b"
    )
    other = message("Média Solution - Missions Recadrage - Lot 51", "à faire pour 9h https://fromsmash.com/Lot51a")
    emails = record(box, first, again, other)
    assert [e.decision for e in emails] == ["accepted", "skipped_duplicate_group", "accepted"]
    assert emails[1].subject_group == "media_solution_missions_recadrage_lot_50"
    assert "already handled" in emails[1].reason


def test_subjects_without_a_lot_are_not_grouped(box):
    first = message("Dispo ?", "https://fromsmash.com/Aaaa1", msgid="<a@x>")
    emails = record(box, first, message("Dispo ?", "https://fromsmash.com/Bbbb2", msgid="<b@x>"))
    assert [e.decision for e in emails] == ["accepted", "accepted"]


def test_monthly_groups_allow_the_same_lot_next_month(box, time_machine):
    box.subject_group_monthly = True
    box.save()
    time_machine.move_to(dt.datetime(2026, 10, 31, 12, tzinfo=dt.UTC))
    record(box, message("Lot 60 photos", "https://fromsmash.com/Lot60a", msgid="<l60a@x>"))
    time_machine.move_to(dt.datetime(2026, 11, 2, 12, tzinfo=dt.UTC))
    [email] = record(box, message("Lot 60 photos", "https://fromsmash.com/Lot60b", msgid="<l60b@x>"))
    assert email.decision == "accepted" and email.subject_group == "2026-11:lot_60"


def test_an_unparseable_message_gets_its_own_row_and_does_not_block_the_others(box):
    emails = record(box, b"", eml("desabo_html_only.eml"))
    assert [e.decision for e in emails] == ["unparseable", "accepted"]
    assert emails[0].identity.startswith("sha256:")
    assert "could not be parsed" in emails[0].reason


def test_broken_mime_is_still_processed(box):
    [email] = record(box, eml("malformed_mime.eml"))
    assert email.decision == "accepted"
    assert email.links == [{"provider": "swisstransfer", "raw_url": "https://www.swisstransfer.com/d/broken-1"}]


def test_large_raw_messages_are_stored_in_chunks_and_read_back_whole(box):
    from email.mime.application import MIMEApplication
    from email.mime.multipart import MIMEMultipart

    big = MIMEMultipart("mixed")
    big.attach(MIMEApplication(bytes(range(256)) * 12000, "octet-stream"))
    big["Message-ID"] = "<big@x>"
    raw = big.as_bytes()
    [email] = record(box, raw)
    assert RawMessage.objects.filter(email=email).count() == 4
    assert RawMessage.read(email.pk) == raw


def test_raw_messages_are_purged_after_the_retention_period(box, time_machine, settings):
    from mail.tasks import purge_raw_messages

    settings.RAW_MESSAGE_RETENTION_DAYS = 30
    time_machine.move_to(dt.datetime(2026, 9, 1, tzinfo=dt.UTC))
    [old] = record(box, message("old", "x", msgid="<old@x>"))
    time_machine.move_to(dt.datetime(2026, 10, 15, tzinfo=dt.UTC))
    [new] = record(box, message("new", "x", msgid="<new@x>"))
    assert purge_raw_messages() == 1
    assert not RawMessage.objects.filter(email=old).exists()
    assert RawMessage.objects.filter(email=new).exists()
    assert Email.objects.filter(pk=old.pk).exists()


_header = st.sampled_from([b"Subject", b"From", b"Date", b"Message-ID", b"Content-Type", b"Content-Transfer-Encoding"])
_junk = st.binary(max_size=200)
_fuzzed = st.one_of(
    st.binary(max_size=2000),
    st.builds(
        lambda hs, body: b"".join(h + b": " + v + b"\r\n" for h, v in hs) + b"\r\n" + body,
        st.lists(st.tuples(_header, _junk), max_size=8),
        _junk,
    ),
    st.builds(lambda cut, tail: eml("recadrage_dropbox_folder.eml")[:cut] + tail, st.integers(0, 3000), _junk),
)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raws=st.lists(_fuzzed, min_size=1, max_size=3))
def test_fuzzed_messages_never_crash_a_batch(box, raws):
    emails = record_batch(box, 1, [Fetched(None, raw) for raw in raws])
    for email in emails:
        assert email.pk and email.decision and email.reason


def test_when_another_writer_got_there_first_the_rest_is_still_recorded_with_deliveries(box):
    from delivery.models import Delivery

    first = message("Lot 70", "https://fromsmash.com/Lot70a", msgid="<l70@x>")
    second = message("Lot 71", "https://fromsmash.com/Lot71a", msgid="<l71@x>")
    record(box, first)  # as if a concurrent writer recorded it after this batch looked
    # Email is the model the pipeline queries (imported at the top of this file).

    original = Email.objects.filter
    with pytest.MonkeyPatch.context() as m:
        # The batch's "already known" lookup misses it, so the bulk insert hits the constraint.
        m.setattr(
            Email.objects,
            "filter",
            lambda *a, **k: original(pk=-1) if "identity__in" in k else original(*a, **k),
        )
        created = record_batch(box, 1, [Fetched(10, first), Fetched(11, second)])
    assert [e.subject for e in created] == ["Lot 71"]
    assert Delivery.objects.filter(email=created[0]).count() == 1
    assert Email.objects.count() == 2
