from __future__ import annotations

import pytest

from delivery.models import Endpoint, SendingSchedule
from mail.models import Email, Mailbox
from tests.mail.conftest import imap, imap_server, mailbox, webhook_receiver  # noqa: F401  (shared)


@pytest.fixture
def endpoint(db, receiver, local_targets) -> Endpoint:
    return Endpoint.objects.create(name="app", url=receiver.url, is_default=True)


@pytest.fixture
def schedule(db) -> SendingSchedule:
    return SendingSchedule.load()


@pytest.fixture
def box(db) -> Mailbox:
    return Mailbox.objects.create(name="orders", host="imap.example", username="u", password="p")


def make_email(box: Mailbox, **fields: object) -> Email:
    values: dict[str, object] = {
        "identity": f"<{Email.objects.count() + 1}@test>",
        "email_id": "0123456789abcdef0123456789abcdef",
        "subject": "Média Solution - Missions Recadrage - Lot 42",
        "sender": "missions@media-solution.example",
        "sender_raw": "Média Solution <missions@media-solution.example>",
        "date_header": "Tue, 03 Nov 2026 09:15:00 +0100",
        "text": "Bonjour, lot 42 à faire pour 9h https://fromsmash.com/Lot42\n<p>html</p>",
        "links": [{"provider": "fromsmash", "raw_url": "https://fromsmash.com/Lot42"}],
        "detector": "recadrage",
        "delivery_time": "09h00",
        "decision": "accepted",
        "reason": "recadrage, 1 link(s): handed to delivery.",
    }
    values.update(fields)
    return Email.objects.create(mailbox=box, **values)
