"""django-q2 jobs of the delivery app."""

from __future__ import annotations

import datetime as dt
import gc
import logging
import threading
import time
from typing import Protocol

from django.conf import settings
from django.utils import timezone

from delivery import r2, timer
from delivery.models import Delivery, Endpoint, LinkTransfer, SendingSchedule, StoredLink
from delivery.outbox import kick_sender
from delivery.sender import claim_batch, deliver, send_test

logger = logging.getLogger(__name__)


_stop_event: StopFlag | None = None


class StopFlag(Protocol):
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = ...) -> bool: ...


def cluster_stop_event() -> StopFlag:
    """The job cluster's stop event, so a long job (a poller session, the sender's timer)
    ends when the cluster stops.

    django-q2 workers are forked from its Sentinel and ignore SIGTERM handling; the
    Sentinel object (and its multiprocessing stop event) is still in the worker's memory.
    Outside a cluster (sync mode, tests) this is an event that is never set.
    """
    global _stop_event
    if _stop_event is None:
        from django_q.cluster import Sentinel

        sentinels = [o for o in gc.get_objects() if isinstance(o, Sentinel)]
        _stop_event = sentinels[0].stop_event if sentinels else threading.Event()
    return _stop_event


def send_due(budget_seconds: float = 240) -> int:
    """Send every due delivery (several workers may run this at once: claims are atomic),
    then arm the timer for the next one."""
    sent = 0
    deadline = time.monotonic() + budget_seconds
    while time.monotonic() < deadline:
        batch = claim_batch()
        if not batch:
            break
        deliver(batch, SendingSchedule.load())
        sent += len(batch)
    timer.arm(timer.next_due_at(timezone.now()))
    return sent


def wake_sender() -> int:
    """Wait for the next due delivery and send it at its time (one such job at a time)."""
    token = timer.new_token()
    if not timer.claim(token):
        return 0
    stop, sent, renew_at = cluster_stop_event(), 0, time.monotonic() + 10
    try:
        while not stop.is_set():
            when, now = timer.wake_at(), timezone.now()
            if when is None or when - now > timer.HORIZON:
                if timer.release(token, when):
                    break
            elif when <= now:
                if timer.took(when):
                    sent += send_due()
            else:
                stop.wait(min(1.0, (when - now).total_seconds()))
            if time.monotonic() >= renew_at:
                timer.renew(token)
                renew_at = time.monotonic() + 10
    finally:
        timer.abandon(token)
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
