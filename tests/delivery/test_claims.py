"""Several sender workers at once: each claims its own deliveries, and none gives up while work is left."""

from __future__ import annotations

import pytest

from delivery.models import Delivery, Endpoint
from delivery.outbox import plan
from delivery.sender import claim_batch
from mail.models import Mailbox
from tests.conftest import run_together
from tests.delivery.conftest import make_email

pytestmark = pytest.mark.django_db(transaction=True)


def claim_together(workers: int) -> list[list[int]]:
    """Each worker claims a batch at the same instant; the delivery ids each one got."""
    return run_together(lambda: [d.pk for d in claim_batch(limit=5)], workers)


def test_simultaneous_claims_take_different_deliveries_and_none_comes_back_empty(settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    Endpoint.objects.create(name="app", url="http://127.0.0.1:9/hook", is_default=True)
    box = Mailbox.objects.create(name="orders", host="imap.example", username="u", password="p")
    for n in range(40):
        plan(make_email(box, identity=f"<{n}@claims>"), kick=False)
    for _ in range(2):
        claims = claim_together(4)
        claimed = [pk for claim in claims for pk in claim]
        assert all(len(claim) == 5 for claim in claims), claims
        assert len(claimed) == len(set(claimed)) == 20
    assert Delivery.objects.exclude(claim="").count() == 40
    assert claim_together(2) == [[], []]
