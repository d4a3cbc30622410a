"""Deciding again about recorded emails (the admin's and the dashboard's "Reprocess").

After a configuration fix (a default endpoint, a routing rule, the allow-list), an email is
run through the same rules as when it arrived: sender, reply, links, detector, subject group,
sending window and routing. It is idempotent: deliveries an email already has are kept as
they are, and only endpoints without one get a new delivery, so no receiver gets an order
twice, however often it is reprocessed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction

from delivery import outbox
from delivery.models import Delivery
from delivery.sender import sync_emails
from mail.models import Email, GmailIngress, MailRules, RawMessage
from mail.parsing import UnparseableMessage, parse_message
from mail.pipeline import GROUP_HANDLED, Fetched, _email_from, examine, skip_handled_group

logger = logging.getLogger(__name__)

# What the rules compute (cleared before they run again), and what parsing gives.
DECIDED_FIELDS = ("links", "subject_group", "detector", "delivery_time", "urgent", "held_until")
PARSED_FIELDS = ("message_id", "subject", "sender", "sender_raw", "date_header", "sent_at", "text")
SAVED_FIELDS = ["decision", "reason", "text", *DECIDED_FIELDS, *PARSED_FIELDS]


def reprocess(email_ids: Iterable[int]) -> list[str]:
    """Decide again about each email; one line per email saying what it became."""
    return [reprocess_one(pk) for pk in email_ids]


def reprocess_one(email_id: int) -> str:
    with transaction.atomic():
        email = Email.objects.select_for_update(of=("self",)).select_related("mailbox").filter(pk=email_id).first()
        if email is None:
            return f"Email {email_id} no longer exists."
        if email.decision == "skipped_sender" and rules_of(email).sender_allowed(email.sender):
            return f"{email}: not reprocessed: its body was not kept (its sender was outside the allow-list)."
        if email.decision == "unparseable" and not _parse_again(email):
            return f"{email}: still unparseable."
        created = _decide(email)
    if created:
        transaction.on_commit(outbox.kick_sender)
    logger.info("REPROCESS: email %s: %s (%s)", email.email_id, email.decision, email.reason)
    return f"{email}: {email.decision}"


def rules_of(email: Email) -> MailRules:
    """Its mailbox's rules, or those of the Gmail push ingress for pushed mail."""
    return email.mailbox if email.mailbox is not None else GmailIngress.load()


def _decide(email: Email) -> list[Delivery]:
    """Run the rules again, add the deliveries it lacks; returns those created."""
    email.links, email.subject_group, email.detector, email.delivery_time = [], "", "", ""
    email.urgent, email.held_until = False, None
    examine(email, rules_of(email), email.received_at)
    skip_handled_group(email, _handled_elsewhere(email))
    planned = outbox.Planner().decide(email) if email.decision == "accepted" else []
    existing = list(Delivery.objects.filter(email=email).select_related("endpoint", "email"))
    have = {d.endpoint_id for d in existing}
    created = [d for d in planned if d.endpoint_id not in have]
    for delivery in created:
        delivery.email = email
    Delivery.objects.bulk_create(created)
    if existing and not created:
        names = ", ".join(d.endpoint.name for d in existing)
        email.decision, email.reason = "accepted", f"Already handed to {names}; nothing new to send."
    email.reason = f"Reprocessed: {email.reason}"
    email.save(update_fields=SAVED_FIELDS)
    if existing and not created:
        sync_emails(existing)  # delivered, retrying, held or failed, as its deliveries are
    return created


def _handled_elsewhere(email: Email) -> set[str]:
    """The email's subject group, when another email of the mailbox already handled it."""
    if not email.subject_group:
        return set()
    others = Email.objects.filter(mailbox=email.mailbox_id, subject_group=email.subject_group)
    return {email.subject_group} if others.filter(decision__in=GROUP_HANDLED).exclude(pk=email.pk).exists() else set()


def _parse_again(email: Email) -> bool:
    """Parse an unparseable email's kept message again (the parser may have been fixed)."""
    raw = RawMessage.read(email.pk)
    if raw is None or email.mailbox is None:  # pushed mail arrives as fields, never as a message to parse
        return False
    try:
        parsed = parse_message(raw, settings.MAIL_MAX_HTML_BYTES)
    except UnparseableMessage as e:
        email.reason = f"Reprocessed: the message could not be parsed: {e}"
        email.save(update_fields=["reason"])
        return False
    fresh = _email_from(email.mailbox, Fetched(email.uid, raw), email.uidvalidity, parsed)
    for field in PARSED_FIELDS:
        setattr(email, field, getattr(fresh, field))
    return True
