"""django-q2 jobs of the delivery app."""

from __future__ import annotations

import datetime as dt
import logging
import time

from django.conf import settings
from django.utils import timezone

from delivery import r2
from delivery.models import Delivery, Endpoint, LinkTransfer, SendingSchedule, StoredLink
from delivery.outbox import kick_sender
from delivery.sender import claim_batch, deliver, send_test

logger = logging.getLogger(__name__)


def send_due(budget_seconds: float = 240) -> int:
    """Send every due delivery (several workers may run this at once: claims are atomic)."""
    sent = 0
    deadline = time.monotonic() + budget_seconds
    while time.monotonic() < deadline:
        batch = claim_batch()
        if not batch:
            break
        deliver(batch, SendingSchedule.load())
        sent += len(batch)
    return sent


def offload_link(transfer_id: int) -> str:
    """Copy one link to R2; once the email has no transfer left running, its deliveries go."""
    result = r2.run(transfer_id)
    email_id = LinkTransfer.objects.filter(pk=transfer_id).values_list("email_id", flat=True).first()
    if email_id is not None and r2.waiting_until(email_id, timezone.now()) is None:
        Delivery.objects.filter(email_id=email_id, status="pending", payload="").update(next_attempt_at=timezone.now())
        kick_sender()
    return result


def purge_stored_links() -> int:
    days = settings.STORED_LINK_RETENTION_DAYS
    if not days:
        return 0
    deleted, _ = StoredLink.objects.filter(created__lt=timezone.now() - dt.timedelta(days=days)).delete()
    return deleted


def send_test_webhook(endpoint_id: int) -> str:
    endpoint = Endpoint.objects.filter(pk=endpoint_id).first()
    return send_test(endpoint) if endpoint else f"Endpoint {endpoint_id} no longer exists"
