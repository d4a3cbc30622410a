"""Searching emails by subject or sender: an index narrows the rows, the answer stays icontains'."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import Q

from mail import search
from mail.models import Email, Mailbox
from tests.delivery.conftest import make_email

pytestmark = pytest.mark.django_db

SUBJECTS = [
    "Média Solution - Missions Recadrage - Lot 42",
    "Média Solution - Missions Recadrage - Lot 420",
    "RE: lot 42 question",
    "Désabonnement journée tarifs",
    'Quote "this" 100% _under_',
    "Ab",
]


@pytest.fixture
def box(db) -> Mailbox:
    return Mailbox.objects.create(name="orders", host="imap.example", username="u", password="p")


@pytest.fixture
def emails(box) -> list[Email]:
    made = [make_email(box, subject=subject, sender=f"person{i}@example.com") for i, subject in enumerate(SUBJECTS)]
    made.append(make_email(box, subject="Hello", sender="LOT42@Sender.example"))
    return made


def found(text: str) -> set[int]:
    return set(Email.objects.filter(search.subject_or_sender_contains(text)).values_list("pk", flat=True))


def plain(text: str) -> set[int]:
    return set(
        Email.objects.filter(Q(subject__icontains=text) | Q(sender__icontains=text)).values_list("pk", flat=True)
    )


@pytest.mark.parametrize("rare", [2000, 0])  # through the index, and by walking the rows
def test_it_finds_exactly_what_icontains_finds(emails, monkeypatch, rare):
    monkeypatch.setattr(search, "RARE", rare)
    for text in (
        "lot 42",
        "LOT 42",
        "Lot",
        "média",
        "journée",
        '"this"',
        "100%",
        "_under_",
        "sender.example",
        "ab",
        "zzz",
    ):
        assert found(text) == plain(text), text
    assert found("lot 42") and found("sender.example")


def test_the_index_follows_edits_and_deletions(emails):
    email = emails[0]
    Email.objects.filter(pk=email.pk).update(subject="Renamed order")
    assert email.pk in found("renamed") and email.pk not in found("Recadrage - Lot 42")
    Email.objects.filter(pk=email.pk).delete()
    assert found("renamed") == set()


@pytest.mark.only_on("sqlite", "the FTS5 table exists on SQLite only")
def test_a_rare_text_is_looked_up_in_the_index(emails, django_assert_num_queries):
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        found("journée")
    assert any("mail_email_search" in q["sql"] and "IN (SELECT" in q["sql"] for q in captured.captured_queries)
