"""django-q2 jobs of the delivery app."""

from __future__ import annotations

import logging
import time

from django.utils import timezone

from delivery.models import Delivery
from delivery.sender import claim_next, process

logger = logging.getLogger(__name__)


def send_due(budget_seconds: float = 240) -> int:
    """Send every due delivery (several workers may run this at once: claims are atomic)."""
    sent = 0
    deadline = time.monotonic() + budget_seconds
    while time.monotonic() < deadline:
        delivery = claim_next()
        if delivery is None:
            break
        process(delivery)
        sent += 1
    return sent


def release_held() -> int:
    """Make held deliveries without a release time due again, so they re-check the schedule."""
    return Delivery.objects.filter(status="held", next_attempt_at__isnull=True).update(next_attempt_at=timezone.now())
