"""The original app's variables create the first mailbox, once."""

from __future__ import annotations

import datetime as dt

import pytest

from mail.bootstrap import create_first_mailbox
from mail.models import Mailbox

pytestmark = pytest.mark.django_db

LEGACY = {
    "username": "commandes@atelier.example",
    "password": "imap-pass",
    "host": "imap.atelier.example",
    "port": 993,
    "use_ssl": True,
    "allowed_senders": "missions@media-solution.example,planning@agence.example",
    "timezone": "Europe/Paris",
    "active_days": "0,1,2,3,4,5",
    "active_start_hour": 8,
    "active_end_hour": 22,
    "poll_interval_seconds": 45,
    "inactive_interval_seconds": 900,
}


def test_the_original_variables_create_the_first_mailbox(settings):
    settings.LEGACY_MAILBOX = LEGACY
    box = create_first_mailbox()
    assert box is not None
    assert (box.name, box.host, box.username, box.password) == (
        "default",
        "imap.atelier.example",
        "commandes@atelier.example",
        "imap-pass",
    )
    assert box.allowed_sender_list() == ["missions@media-solution.example", "planning@agence.example"]
    assert (box.active_start, box.active_end, box.active_days) == (dt.time(8), dt.time(22), "0,1,2,3,4,5")
    assert (box.poll_interval_seconds, box.inactive_interval_seconds) == (45, 900)


def test_nothing_is_created_when_a_mailbox_exists_or_the_variables_are_unset(settings):
    settings.LEGACY_MAILBOX = {**LEGACY, "host": ""}
    assert create_first_mailbox() is None
    settings.LEGACY_MAILBOX = LEGACY
    Mailbox.objects.create(name="mine", host="h", username="u", password="p")
    assert create_first_mailbox() is None
    assert Mailbox.objects.count() == 1


def test_the_poller_and_the_sender_are_scheduled():
    from django.core.management import call_command
    from django_q.models import Schedule

    call_command("migrate", verbosity=0)
    names = set(Schedule.objects.values_list("name", flat=True))
    assert {"poll-mailboxes", "send-due-deliveries", "purge-raw-messages", "heartbeat"} <= names
