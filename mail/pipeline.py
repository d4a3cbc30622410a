"""From raw message bytes to an Email row with a decision, and the hand-off to delivery.

Each batch is written in one transaction (one savepoint per message), so a crash leaves
either every row of the batch or none; the unique (mailbox, identity) constraint makes a
re-fetch after a crash or a UIDVALIDITY change harmless.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from delivery import outbox
from delivery.models import Delivery
from mail import detectors, links, subjects
from mail.models import Email, GmailIngress, Mailbox, MailRules, RawMessage
from mail.parsing import ParsedMessage, UnparseableMessage, parse_message
from signalserver import inserts

logger = logging.getLogger(__name__)

SEEN = b"\\Seen"
# Decisions after which a "Lot <n>" group counts as handled.
GROUP_HANDLED = ("accepted", "delivered", "held", "retrying", "failed")


@dataclass
class Fetched:
    uid: int | None
    raw: bytes | bytearray


def _unparseable(mailbox: Mailbox, item: Fetched, uidvalidity: int | None, error: str) -> Email:
    digest = hashlib.sha256(item.raw).hexdigest()
    return Email(
        mailbox=mailbox,
        identity=f"sha256:{digest}",
        email_id=digest[:32],
        uid=item.uid,
        uidvalidity=uidvalidity,
        size=len(item.raw),
        decision="unparseable",
        reason=f"The message could not be parsed: {error}",
    )


def _email_from(mailbox: Mailbox, item: Fetched, uidvalidity: int | None, parsed: ParsedMessage) -> Email:
    return Email(
        mailbox=mailbox,
        identity=parsed.identity,
        email_id=parsed.email_id,
        uid=item.uid,
        uidvalidity=uidvalidity,
        message_id=parsed.message_id[:998],
        subject=parsed.subject,
        sender=parsed.sender[:320],
        sender_raw=parsed.sender_raw,
        date_header=parsed.date_header[:255],
        sent_at=parsed.sent_at,
        size=len(item.raw),
        text=parsed.text,
    )


def handled_groups(mailbox: Mailbox | None, groups: set[str]) -> set[str]:
    handled = Email.objects.filter(mailbox=mailbox, subject_group__in=groups, decision__in=GROUP_HANDLED)
    return set(handled.values_list("subject_group", flat=True))


def examine(email: Email, mailbox: MailRules, now: dt.datetime) -> None:
    """Apply the rules that need only the message, in the original's order; the result is on `email`.

    Sender allow-list, reply prefix, links, subject group and detector. The subject-group
    dedup, which needs the database, follows in `skip_handled_group`.
    """
    if not mailbox.sender_allowed(email.sender):
        email.set_decision("skipped_sender", f"Sender {email.sender or '(none)'} is not in the allow-list.")
        email.text = ""  # mail outside the allow-list is not kept
        return
    if subjects.is_reply(email.subject):
        email.set_decision("skipped_reply", "The subject starts with a reply/forward prefix.")
        return
    email.links = links.extract(email.text)
    local_now = now.astimezone(mailbox.tz)
    group = subjects.subject_group(email.subject)
    if mailbox.subject_group_dedup and subjects.is_lot_group(group):
        email.subject_group = subjects.scoped_group(group, local_now, mailbox.subject_group_monthly)
    found = detectors.detect(email.subject, email.text, local_now, email.links)
    email.detector, email.delivery_time, email.urgent = found.detector, found.delivery_time, found.urgent
    what = found.detector or "no detector"
    email.set_decision("accepted", f"{what}, {len(email.links)} link(s): handed to delivery.")


def skip_handled_group(email: Email, handled: set[str]) -> None:
    """An accepted email of a "Lot" group already handled is skipped; otherwise it claims the group."""
    if email.decision != "accepted" or not email.subject_group:
        return
    if email.subject_group in handled:
        email.detector, email.delivery_time, email.urgent = "", "", False
        email.set_decision("skipped_duplicate_group", f"Subject group {email.subject_group} was already handled.")
        return
    handled.add(email.subject_group)


def parse_batch(mailbox: Mailbox, uidvalidity: int | None, items: Sequence[Fetched]) -> list[tuple[Email, Fetched]]:
    """Unsaved Email rows for fetched messages, examined by the rules (no database access)."""
    emails = []
    now = timezone.now()
    for item in items:
        try:
            parsed = parse_message(item.raw, settings.MAIL_MAX_HTML_BYTES)
        except UnparseableMessage as e:
            logger.warning("IGNORED: unparseable message uid=%s in %s: %s", item.uid, mailbox, e)
            emails.append((_unparseable(mailbox, item, uidvalidity, str(e)), item))
            continue
        email = _email_from(mailbox, item, uidvalidity, parsed)
        examine(email, mailbox, now)
        emails.append((email, item))
    return emails


Planned = dict[int, list[Delivery]]
# A batch with more messages than this is mail that had waited (a backlog): its deliveries
# are sent after those of mail arriving now, which comes in small batches.
BACKLOG_BATCH = 20


def _save(email: Email, item: Fetched, deliveries: list[Delivery]) -> bool:
    """Insert one row, its raw bytes and its deliveries; False when it already exists."""
    try:
        with transaction.atomic():
            email.save()
            _store_raw([(email, item)])
            _store_deliveries([email], {id(email): deliveries})
    except IntegrityError:
        return False
    return True


@contextlib.contextmanager
def bound_on_server() -> Iterator[None]:
    """On PostgreSQL, send this block's query parameters apart from the SQL (server-side binding).

    A batch insert carries megabytes of message text and raw bytes: quoted into the SQL
    they are escaped here and parsed again by the server. Only plain INSERTs run in the
    block, which server-side binding handles like any query.
    """
    if connection.vendor != "postgresql":
        yield
        return
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    raw = connection.connection
    previous, raw.cursor_factory = raw.cursor_factory, ServerBindingCursor
    try:
        yield
    finally:
        raw.cursor_factory = previous


def _save_all(fresh: list[tuple[Email, Fetched]], planned: Planned) -> list[Email]:
    """Insert a batch in one transaction: rows, raw bytes, and deliveries (the outbox)."""
    with transaction.atomic(), bound_on_server():
        emails = [email for email, _ in fresh]
        inserts.insert(emails, returning_pk=True)
        _store_raw(fresh)
        _store_deliveries(emails, planned)
    return emails


def _store_raw(fresh: list[tuple[Email, Fetched]]) -> None:
    small: list[RawMessage] = []
    for email, item in fresh:
        if email.decision == "skipped_sender":
            continue  # mail outside the allow-list is not kept
        if len(item.raw) > RawMessage.CHUNK_BYTES:
            RawMessage.store(email, item.raw)  # chunk by chunk: memory stays bounded
        else:
            small.extend(RawMessage.chunks(email, item.raw))
    inserts.insert(small)


def _store_deliveries(emails: list[Email], planned: Planned) -> None:
    deliveries = []
    for email in emails:
        for delivery in planned.get(id(email), []):
            delivery.email = email
            deliveries.append(delivery)
    if deliveries:
        inserts.insert(deliveries, returning_pk=True)
        transaction.on_commit(kick_delivery)


def kick_delivery() -> None:
    outbox.kick_sender()


def record_parsed(mailbox: Mailbox | None, parsed: list[tuple[Email, Fetched]]) -> list[Email]:
    """Skip known messages and handled groups, plan deliveries and insert; returns the rows created.

    `mailbox` None: pushed mail, whose identities and groups are those of the other pushed mail.
    """
    return _record(mailbox, parsed, _known(mailbox, parsed))


@dataclass
class Polled:
    """What a poller's batch recorded, and the messages it must flag on the server."""

    created: list[Email]
    to_flag: list[Email]


def record_polled(mailbox: Mailbox, uidvalidity: int, parsed: list[tuple[Email, Fetched]]) -> Polled:
    """`record_parsed` for a poller, whose flags on the server follow the commit.

    The rows are written with `seen_flagged` already set when the mailbox marks them read
    (one UPDATE of every row less); the poller flags them before it moves its position. If
    it stopped in between, the next sync fetches these messages again: those recorded at the
    same UID are flagged then (`to_flag`), so a recorded message is never left unflagged.
    """
    known = _known(mailbox, parsed)
    again = [
        Email(uid=item.uid, uidvalidity=uidvalidity, decision=known[email.identity][2])
        for email, item in parsed
        if email.identity in known and known[email.identity][:2] == (item.uid, uidvalidity)
    ]
    created = _record(mailbox, parsed, known, mark_seen=True)
    return Polled(created, created + again)


Known = dict[str, tuple[int | None, int | None, str]]


def _known(mailbox: Mailbox | None, parsed: list[tuple[Email, Fetched]]) -> Known:
    """The batch's messages already recorded: identity → (uid, uidvalidity, decision)."""
    identities = [e.identity for e, _ in parsed]
    rows = Email.objects.filter(mailbox=mailbox, identity__in=identities)
    return {
        identity: (uid, validity, decision)
        for identity, uid, validity, decision in rows.values_list("identity", "uid", "uidvalidity", "decision")
    }


def _record(
    mailbox: Mailbox | None, parsed: list[tuple[Email, Fetched]], known: Iterable[str], mark_seen: bool = False
) -> list[Email]:
    known = set(known)
    handled = handled_groups(mailbox, {e.subject_group for e, _ in parsed if e.subject_group})
    fresh: list[tuple[Email, Fetched]] = []
    for email, item in parsed:
        if email.identity in known:
            logger.info("DEDUP_EMAIL: skipping already recorded %s in %s", email.identity, mailbox)
            continue
        known.add(email.identity)
        skip_handled_group(email, handled)
        fresh.append((email, item))
    # Where accepted mail goes is decided before the insert, so each row is written once.
    planner = outbox.Planner()
    planned: Planned = {id(e): planner.decide(e) for e, _ in fresh if e.decision == "accepted"}
    if len(parsed) > BACKLOG_BATCH:
        for deliveries in planned.values():
            for delivery in deliveries:
                delivery.backlog = True
    if mark_seen and mailbox is not None:
        for email, _ in fresh:
            email.seen_flagged = email.uid is not None and SEEN in mailbox.flags_for(email.decision)
    return _insert(mailbox, fresh, planned)


def _insert(mailbox: Mailbox | None, fresh: list[tuple[Email, Fetched]], planned: Planned) -> list[Email]:
    try:
        created = _save_all(fresh, planned)
    except IntegrityError:
        # Another writer recorded one of these meanwhile: save one by one, skipping it.
        created = [email for email, item in fresh if _save(email, item, planned.get(id(email), []))]
    prefix, source = ("POLLER", mailbox.name) if mailbox else ("INGRESS", "gmail_push")
    for email in created:
        logger.info(
            "%s: email %s from %s: %s (%s)",
            prefix,
            email.email_id,
            email.sender or "-",
            email.decision,
            email.reason,
            extra={"email_id": email.email_id, "mailbox": source},
        )
    return created


def record_batch(mailbox: Mailbox, uidvalidity: int | None, items: Sequence[Fetched]) -> list[Email]:
    """Record new messages; returns the Email rows created (already known ones are skipped)."""
    return record_parsed(mailbox, parse_batch(mailbox, uidvalidity, items))


def record_pushed(email: Email, raw: bytes, rules: GmailIngress) -> Email | None:
    """Record a message that arrived as fields (Gmail push) by the rules and outbox of polled mail.

    `raw` is kept as its raw message. None when it is already recorded: among pushed mail its
    identity is unique, so of two simultaneous pushes of one message exactly one is recorded.
    """
    examine(email, rules, timezone.now())
    created = record_parsed(None, [(email, Fetched(None, raw))])
    return created[0] if created else None
