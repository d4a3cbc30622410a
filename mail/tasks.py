"""django-q2 jobs of the mail app."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time

import redis
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from django_q.tasks import async_task

from delivery.tasks import cluster_stop_event
from mail import imap, lease
from mail.models import Mailbox, RawMessage
from mail.poller import HANDOVER_GRACE_SECONDS, run_once, run_session
from mail.reprocess import reprocess

logger = logging.getLogger(__name__)

# A "check now" still pending after this long (a lost job, a stopped poller) no longer blocks a new one.
CHECK_PENDING_FOR = dt.timedelta(minutes=2)


def poll_mailboxes() -> int:
    """Scheduled every minute: start a poller session for each enabled mailbox nobody serves."""
    started = 0
    for mailbox in Mailbox.objects.filter(enabled=True):
        if not lease.holder(mailbox.lease_name):
            async_task("mail.tasks.poll_mailbox", mailbox.pk, 0, task_name=f"poll {mailbox.name}")
            started += 1
    return started


def poll_mailbox(mailbox_id: int, wait_for_lease: float = 0, take_over: bool = False) -> bool:
    """One poller session of POLLER_SESSION_SECONDS; at its end it starts the next one and
    serves until that one is connected (`take_over`), so the hand-over leaves no gap."""
    mailbox = Mailbox.objects.filter(pk=mailbox_id, enabled=True).first()
    if mailbox is None:
        return False

    def hand_over() -> None:
        wait = settings.POLLER_LEASE_SECONDS + HANDOVER_GRACE_SECONDS
        try:
            async_task("mail.tasks.poll_mailbox", mailbox_id, wait, True, task_name=f"poll {mailbox.name}")
        except (redis.RedisError, DatabaseError, OSError) as e:
            logger.warning("BG_POLLER: could not start the next session of %s (%s); the schedule will", mailbox, e)

    return run_session(
        mailbox,
        cluster_stop_event(),
        seconds=settings.POLLER_SESSION_SECONDS,
        wait_for_lease=wait_for_lease,
        on_handover=hand_over,
        take_over=take_over,
    )


def request_check(mailbox: Mailbox) -> bool:
    """Queue a "check now" unless one is already pending for this mailbox (then False)."""
    if not mailbox.claim_check(CHECK_PENDING_FOR):
        return False
    async_task("mail.tasks.check_now", mailbox.pk, task_name=f"check {mailbox.name}")
    return True


def check_now(mailbox_id: int) -> str:
    """Fetch new mail once, whatever the schedule says (the dashboard's "check now").

    It never waits for the lease: when a session holds it, that session is asked to fetch
    at once (it reads its lease row every second) and reports the result itself.
    """
    mailbox = Mailbox.objects.get(pk=mailbox_id)
    for _ in range(5):
        try:
            created = run_once(mailbox, threading.Event(), ignore_schedule=True)
        except imap.IMAP_ERRORS as e:
            return _checked(mailbox, f"Not checked: {imap.explain(e, mailbox)}")
        if created is not None:
            return _checked(mailbox, f"{created} new email(s).")
        # Noted before asking: the running poller may answer within the second.
        mailbox.record_check("Asked the running poller to fetch now…", done=False)
        if lease.request_wake(mailbox.lease_name):
            return f"Asked the running poller ({lease.holder(mailbox.lease_name) or 'another process'}) to fetch now."
        time.sleep(0.2)  # the lease changed hands between the two looks: try again
    return _checked(mailbox, "Not checked: the poller lease kept changing hands; try again.")


def _checked(mailbox: Mailbox, result: str) -> str:
    mailbox.record_check(result)
    logger.info("POLLER: check now of %s: %s", mailbox, result)
    return result


def reprocess_emails(email_ids: list[int]) -> str:
    return "\n".join(reprocess(email_ids))


def test_mailbox(mailbox_id: int) -> str:
    mailbox = Mailbox.objects.get(pk=mailbox_id)
    result = imap.test_connection(mailbox)
    Mailbox.objects.filter(pk=mailbox_id).update(last_test_result=result, last_test_at=timezone.now())
    logger.info("IMAP: connection test of %s: %s", mailbox, result)
    return result


def purge_raw_messages() -> int:
    """Drop raw message bytes older than RAW_MESSAGE_RETENTION_DAYS (0 keeps them forever)."""
    days = settings.RAW_MESSAGE_RETENTION_DAYS
    if not days:
        return 0
    cutoff = timezone.now() - dt.timedelta(days=days)
    deleted, _ = RawMessage.objects.filter(stored_at__lt=cutoff).delete()
    if deleted:
        logger.info("Purged %d raw message(s) older than %d days", deleted, days)
    return deleted
