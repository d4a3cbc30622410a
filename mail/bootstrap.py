"""Create the first mailbox and the Gmail push ingress settings from the original app's variables."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from django.conf import settings

from mail.models import GmailIngress, Mailbox

logger = logging.getLogger(__name__)


def create_first_mailbox(**kwargs: Any) -> Mailbox | None:
    """When no mailbox exists and EMAIL_ADDRESS/IMAP_SERVER are set, create one from them."""
    env: dict[str, Any] = settings.LEGACY_MAILBOX
    if not (env["username"] and env["host"]) or Mailbox.objects.exists():
        return None
    end_hour = env["active_end_hour"]
    mailbox = Mailbox.objects.create(
        name="default",
        host=env["host"],
        port=env["port"],
        use_ssl=env["use_ssl"],
        username=env["username"],
        password=env["password"],
        allowed_senders=env["allowed_senders"],
        timezone=env["timezone"],
        active_days=env["active_days"],
        active_start=dt.time(env["active_start_hour"]),
        active_end=dt.time(0) if end_hour == 24 else dt.time(end_hour),
        poll_interval_seconds=env["poll_interval_seconds"],
        inactive_interval_seconds=env["inactive_interval_seconds"],
    )
    logger.info("CFG: mailbox %s created from EMAIL_ADDRESS/IMAP_SERVER", mailbox)
    return mailbox


def create_ingress_settings(**kwargs: Any) -> GmailIngress:
    """The Gmail push ingress row, seeded from GMAIL_SENDER_ALLOWLIST when migrate first creates it."""
    return GmailIngress.load()
