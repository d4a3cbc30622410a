"""The batch INSERT writes exactly the rows that Django's bulk_create writes."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.models import Model

from delivery.models import Attempt, Delivery, Endpoint
from mail.models import Email, Mailbox, RawMessage
from signalserver import inserts

pytestmark = pytest.mark.django_db

IGNORED = {"id", "identity", "email_id", "webhook_id"}


@pytest.fixture
def box(db) -> Mailbox:
    return Mailbox.objects.create(name="orders", host="imap.example", username="u", password="p")


def email(box: Mailbox, identity: str) -> Email:
    return Email(
        mailbox=box,
        identity=identity,
        email_id="0123456789abcdef",
        uid=7,
        uidvalidity=3,
        message_id="<m@x>",
        subject="Média Solution - Missions Recadrage - Lot 42 \N{EM DASH} ✓",
        sender="missions@media-solution.example",
        sent_at=dt.datetime(2026, 11, 3, 9, 15, 30, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        size=7000,
        received_at=dt.datetime(2026, 11, 3, 8, 16, tzinfo=dt.UTC),
        detector="recadrage",
        delivery_time="09h00",
        urgent=True,
        links=[{"provider": "dropbox", "raw_url": "https://www.dropbox.com/s/a?x=1&y=é"}],
        text="Bonjour, lot 42 à faire",
        decision="accepted",
        held_until=None,
    )


def rows(model: type[Model], **filters: object) -> list[dict[str, object]]:
    return [
        {k: v for k, v in row.items() if k not in IGNORED} for row in model._default_manager.filter(**filters).values()
    ]


def test_emails_raw_bytes_and_deliveries_are_written_as_bulk_create_writes_them(box):
    endpoint = Endpoint.objects.create(name="app", url="https://app.example/hook")
    ours = [email(box, f"<ours{i}>") for i in range(60)]  # more rows than one SQLite statement takes
    theirs = [email(box, f"<theirs{i}>") for i in range(60)]
    inserts.insert(ours, returning_pk=True)
    Email.objects.bulk_create(theirs)
    assert all(e.pk and not e._state.adding for e in ours)
    assert [e.pk for e in ours] == sorted(
        Email.objects.filter(identity__startswith="<ours").values_list("pk", flat=True)
    )
    assert rows(Email, identity__startswith="<ours") == rows(Email, identity__startswith="<theirs")
    # As stored, not only as read back: SQLite compares and sorts dates as their text.
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT sent_at, received_at, held_until FROM mail_email")
        assert len(cursor.fetchall()) == 1

    inserts.insert([RawMessage(email=e, seq=0, data=b"\x00\xffraw") for e in ours])
    RawMessage.objects.bulk_create([RawMessage(email=e, seq=0, data=b"\x00\xffraw") for e in theirs])
    assert {bytes(r.data) for r in RawMessage.objects.all()} == {b"\x00\xffraw"}

    def delivery(e: Email) -> Delivery:
        return Delivery(
            email=e,
            endpoint=endpoint,
            routing_rule={"name": "urgent"},
            status="held",
            backlog=True,
            next_attempt_at=dt.datetime(2026, 11, 9, 7, tzinfo=dt.UTC),
            created=dt.datetime(2026, 11, 3, 8, 16, tzinfo=dt.UTC),
            payload='{"a": 1}',
        )

    ours_deliveries = [delivery(e) for e in ours]
    inserts.insert(ours_deliveries, returning_pk=True)
    Delivery.objects.bulk_create([delivery(e) for e in theirs])
    assert all(d.pk for d in ours_deliveries)
    mine = [{**r, "email_id": None} for r in rows(Delivery, email__identity__startswith="<ours")]
    other = [{**r, "email_id": None} for r in rows(Delivery, email__identity__startswith="<theirs")]
    assert mine == other and len(mine) == 60

    def attempt(d: Delivery, answered: bool) -> Attempt:
        started = dt.datetime(2026, 11, 3, 8, 16, 0, 250000, tzinfo=dt.UTC)
        if answered:
            return Attempt(delivery=d, started=started, outcome="delivered", status_code=200, duration_ms=3)
        return Attempt(delivery=d, started=started, outcome="failed", error="The connection … was cut")

    inserts.insert([attempt(d, i % 2 == 0) for i, d in enumerate(ours_deliveries)])
    Attempt.objects.bulk_create(
        [
            attempt(d, i % 2 == 0)
            for i, d in enumerate(Delivery.objects.exclude(pk__in=[d.pk for d in ours_deliveries]).order_by("pk"))
        ]
    )
    mine = [{**r, "delivery_id": None} for r in rows(Attempt, delivery__in=ours_deliveries)]
    other = [{**r, "delivery_id": None} for r in rows(Attempt, delivery__email__identity__startswith="<theirs")]
    assert mine == other and len(mine) == 60


def test_a_value_of_the_wrong_kind_is_refused_not_written(box):
    wrong = email(box, "<wrong>")
    wrong.size = 7.5  # a float where the column takes integers
    with pytest.raises(TypeError, match="size: a plain column was given float"):
        inserts.insert([wrong])
    assert not Email.objects.exists()


def test_a_row_already_there_fails_the_statement_with_djangos_integrity_error(box):
    inserts.insert([email(box, "<first>")])
    with pytest.raises(IntegrityError), transaction.atomic():
        inserts.insert([email(box, "<second>"), email(box, "<first>")], returning_pk=True)
    assert list(Email.objects.values_list("identity", flat=True)) == ["<first>"]


def test_more_rows_than_one_statement_takes_are_written_whole_with_their_keys_in_order(box):
    columns = len([f for f in Email._meta.concrete_fields if f.name != "id"])
    count = min(inserts.MAX_PARAMETERS, connection.ops.bulk_batch_size(["x"] * columns, [None] * 10**6)) // columns + 7
    many = [email(box, f"<many{i:05}>") for i in range(count)]
    inserts.insert(many, returning_pk=True)
    stored = list(Email.objects.order_by("pk").values_list("pk", "identity"))
    assert stored == [(e.pk, e.identity) for e in many]
