"""Mail pushed by the original's Google Apps Script: checked fields in, the pipeline of polled mail after.

The script posts each labelled Gmail message as JSON `{subject, sender, date, body, snippet}`
(`body` is the HTML body). Here it becomes an Email row with `source = gmail_push`, judged by
the same rules as polled mail (allow-list, reply filter, subject groups, detectors, sending
schedule, routing rules) and handed to delivery through the outbox, all in the caller's
transaction. Its identity is the original's md5 of `subject|sender|date`, unique among pushed
mail: a re-push, or a second push racing the first, is `already_processed` and never sent twice.

Nothing is written unless every field is valid.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from mail import pipeline
from mail.models import Email, GmailIngress
from mail.parsing import parse_date, storable

logger = logging.getLogger(__name__)

TEXT_FIELDS = ("subject", "sender", "date", "body", "snippet")
REQUIRED = ("sender", "body")


class PushRefused(Exception):
    """The push is not taken: `status` and `message` are the answer the original gave."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Pushed:
    subject: str
    sender: str
    date: str
    body: str
    snippet: str


@dataclass(frozen=True)
class Outcome:
    status: str  # queued, already_processed or skipped_sender_not_allowed
    email_id: str
    email: Email | None


def parse_push(raw: bytes) -> Pushed:
    """The pushed fields, or PushRefused(400) naming what is wrong (the original's messages)."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # bad JSON, bad UTF-8, absurd numbers or nesting
        raise PushRefused(400, "Invalid JSON payload") from None
    if not isinstance(data, dict):
        raise PushRefused(400, "Invalid JSON payload")
    fields = {name: _text(data, name) for name in TEXT_FIELDS}
    for name in REQUIRED:
        if not fields[name].strip():
            raise PushRefused(400, f"Missing field: {name}")
    return Pushed(**fields)


def _text(data: dict[str, Any], name: str) -> str:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PushRefused(400, f"Invalid field: {name} must be a string")
    return storable(value)


def clean_sender(sender: str) -> str:
    """The address as the original's ingress took it: parseaddr, else the raw text; lower-cased."""
    _, address = email.utils.parseaddr(sender)
    return (address.strip() or sender.strip()).lower()


def email_id(subject: str, sender: str, date: str) -> str:
    """The original's id of pushed mail: md5 of "subject|clean sender|date"."""
    key = f"{subject}|{clean_sender(sender)}|{date}"
    return hashlib.md5(key.encode("utf-8"), usedforsecurity=False).hexdigest()


def sent_at(date: str) -> dt.datetime | None:
    """The Apps Script sends ISO 8601 (`toISOString()`); RFC 2822 dates are read too."""
    try:
        parsed: dt.datetime | None = dt.datetime.fromisoformat(date.strip())
    except ValueError:
        parsed = parse_date(date)
    if parsed is None:
        return None
    try:
        return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    except OverflowError:  # e.g. year 9999 at UTC-14: no instant to store
        return None


def detection_text(body: str) -> str:
    """The body, capped like the HTML of polled mail (MAIL_MAX_HTML_BYTES)."""
    cap = settings.MAIL_MAX_HTML_BYTES
    if len(body) <= cap // 4:
        return body
    return body.encode("utf-8")[:cap].decode("utf-8", "ignore")


def build_email(pushed: Pushed, size: int) -> Email:
    identity = email_id(pushed.subject, pushed.sender, pushed.date)
    return Email(
        mailbox=None,
        source="gmail_push",
        identity=identity,
        email_id=identity,
        subject=pushed.subject,
        sender=clean_sender(pushed.sender)[:320],
        sender_raw=pushed.sender,
        date_header=pushed.date[:255],
        sent_at=sent_at(pushed.date),
        size=size,
        text=detection_text(pushed.body),
    )


def receive(pushed: Pushed, raw: bytes) -> Outcome:
    """Record a push (its request body kept as its raw message) unless ingress is switched off."""
    with transaction.atomic():
        rules = GmailIngress.load()
        if not rules.enabled:
            raise PushRefused(409, "Gmail ingress disabled")
        email = build_email(pushed, len(raw))
        created = pipeline.record_pushed(email, raw, rules)
    if created is None:
        logger.info("DEDUP_EMAIL: push of %s already recorded", email.email_id, extra={"email_id": email.email_id})
        return Outcome("already_processed", email.email_id, None)
    status = "skipped_sender_not_allowed" if created.decision == "skipped_sender" else "queued"
    return Outcome(status, created.email_id, created)
