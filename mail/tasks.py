"""django-q2 jobs of the mail app."""

from __future__ import annotations

import datetime as dt
import gc
import logging
import threading

from django.conf import settings
from django.utils import timezone
from django_q.tasks import async_task

from mail import imap, lease
from mail.models import Mailbox, RawMessage
from mail.poller import StopFlag, run_once, run_session

logger = logging.getLogger(__name__)

_stop_event: StopFlag | None = None


def cluster_stop_event() -> StopFlag:
    """The job cluster's stop event, so a long poller job ends when the cluster stops.

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


def poll_mailboxes() -> int:
    """Scheduled every minute: start a poller session for each enabled mailbox nobody serves."""
    started = 0
    for mailbox in Mailbox.objects.filter(enabled=True):
        if not lease.holder(mailbox.lease_name):
            async_task("mail.tasks.poll_mailbox", mailbox.pk, 0, task_name=f"poll {mailbox.name}")
            started += 1
    return started


def poll_mailbox(mailbox_id: int, wait_for_lease: float = 5) -> bool:
    mailbox = Mailbox.objects.filter(pk=mailbox_id, enabled=True).first()
    if mailbox is None:
        return False

    def hand_over() -> None:
        async_task("mail.tasks.poll_mailbox", mailbox_id, 5, task_name=f"poll {mailbox.name}")

    return run_session(
        mailbox,
        cluster_stop_event(),
        seconds=settings.POLLER_SESSION_SECONDS,
        wait_for_lease=wait_for_lease,
        on_handover=hand_over,
    )


def check_now(mailbox_id: int, wait_for_lease: float | None = None) -> str:
    """Fetch new mail once, whatever the schedule says (the dashboard's "check now").

    A session already serving the mailbox sees new mail by itself; when it holds the lease,
    this waits for it (up to one lease period) rather than run a second poller.
    """
    mailbox = Mailbox.objects.get(pk=mailbox_id)
    held = lease.holder(mailbox.lease_name)
    wait = settings.POLLER_LEASE_SECONDS if wait_for_lease is None else wait_for_lease
    try:
        created = run_once(mailbox, threading.Event(), wait, ignore_schedule=True)
    except imap.IMAP_ERRORS as e:
        return f"Failed: {imap.describe(e)}"
    if created is None:
        return f"Not checked: {mailbox} is being polled by {held or 'another poller'}"
    logger.info("POLLER: check now of %s: %d new email(s)", mailbox, created)
    return f"Checked {mailbox}: {created} new email(s)"


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
