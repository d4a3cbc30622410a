"""Taking over a mailbox from the original: its read history is not sent again."""

from __future__ import annotations

import datetime as dt
import io
import re

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from mail.models import Email, Mailbox, PollerLease
from tests.mail.corpus import message

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def order(n: int) -> bytes:
    return message(
        f"Média Solution - Missions Recadrage - Lot {n}",
        f"à faire pour 9h https://fromsmash.com/L{n}",
        msgid=f"<lot{n}@x>",
    )


def take_over(*args: str) -> str:
    out = io.StringIO()
    call_command("take_over_mailbox", *args, stdout=out)
    return out.getvalue()


def test_the_first_poll_after_a_take_over_records_only_mail_after_the_last_read_message(mailbox, imap):
    imap.append(order(1), flags=(b"\\Seen",))  # handled by the original
    imap.append(order(2))  # left unread by a person: history all the same
    imap.append(order(3), flags=(b"\\Seen",))  # the original's last cycle
    imap.append(order(4))  # arrived since
    imap.append(order(5))
    output = take_over()
    assert re.search(r"3 message\(s\) up to UID \d+ are history", output)
    assert "records the 2 unread message(s)" in output
    call_command("poll", once=True)
    assert sorted(Email.objects.values_list("subject", flat=True)) == [
        "Média Solution - Missions Recadrage - Lot 4",
        "Média Solution - Missions Recadrage - Lot 5",
    ]


def test_without_a_take_over_a_new_mailbox_records_its_whole_folder(mailbox, imap):
    imap.append(order(1), flags=(b"\\Seen",))
    imap.append(order(2))
    call_command("poll", once=True)
    assert Email.objects.count() == 2


def test_a_mailbox_already_polled_or_being_polled_is_not_moved(mailbox, imap):
    imap.append(order(1), flags=(b"\\Seen",))
    call_command("poll", once=True)
    with pytest.raises(CommandError, match="already polled"):
        take_over("orders")
    assert re.search(r"1 message\(s\) up to UID \d+ are history", take_over("orders", "--force"))
    PollerLease.objects.update_or_create(
        name="orders", defaults={"holder": "worker-1", "expires_at": timezone.now() + dt.timedelta(minutes=1)}
    )
    with pytest.raises(CommandError, match="being polled by worker-1"):
        take_over("orders", "--force")


def test_an_unreachable_server_is_a_clear_error(mailbox):
    Mailbox.objects.update(port=1)
    with pytest.raises(CommandError, match=r"cannot read orders: 127\.0\.0\.1:1 refused the connection"):
        take_over()
