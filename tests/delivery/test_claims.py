"""Several sender workers at once: each claims its own deliveries, and none gives up while work is left."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from delivery.models import Delivery, Endpoint
from delivery.outbox import plan
from delivery.sender import claim_batch
from mail.models import Mailbox
from tests.delivery.conftest import make_email

pytestmark = pytest.mark.django_db(transaction=True)


def claim_together(workers: int) -> list[list[int]]:
    """Each worker claims a batch at the same instant; the delivery ids each one got."""
    barrier = threading.Barrier(workers)
    claims: list[list[int]] = []

    def worker() -> None:
        barrier.wait()
        try:
            claims.append([d.pk for d in claim_batch(limit=5)])
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return claims


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
