"""Seed a history of emails, deliveries, attempts and R2 transfers, as months of service leave it.

    from bench.seed import seed
    seed(100_000)

Emails are spread over `days` (default 60) up to now, across two mailboxes and two
endpoints, with the decisions a real history has (mostly delivered, some skipped, a few
held or failed). Subjects are "Média Solution - Missions Recadrage - Lot <n>", so a search
for "Lot" matches nearly all of them.
"""

from __future__ import annotations

import datetime as dt
import random

from django.db import transaction
from django.utils import timezone

from delivery.models import Attempt, Delivery, Endpoint, LinkTransfer
from mail.models import Email, Mailbox

DECISIONS = [
    ("delivered", 70),
    ("skipped_reply", 8),
    ("skipped_sender", 8),
    ("skipped_duplicate_group", 5),
    ("skipped_outside_window", 3),
    ("held", 2),
    ("failed", 2),
    ("unparseable", 1),
    ("skipped_no_links", 1),
]
TEXT = ("Bonjour, merci de traiter le lot ci-dessous avant la date indiquée. " * 40)[:2500]


def _world() -> tuple[list[Mailbox], list[Endpoint]]:
    account = {"host": "imap.example", "password": "x"}
    boxes = [
        Mailbox.objects.get_or_create(name=name, defaults={**account, "username": name})[0]
        for name in ("orders", "support")
    ]
    endpoints = [
        Endpoint.objects.get_or_create(name=name, defaults={"url": f"https://{name}.example/hook"})[0]
        for name in ("app", "archive")
    ]
    return boxes, endpoints


def seed(count: int, days: int = 60, batch: int = 2000, rng: random.Random | None = None) -> None:
    rng = rng or random.Random(42)
    boxes, endpoints = _world()
    now = timezone.now()
    span = dt.timedelta(days=days).total_seconds()
    names, weights = zip(*DECISIONS, strict=True)
    start = Email.objects.count()
    for offset in range(0, count, batch):
        n = min(batch, count - offset)
        with transaction.atomic():
            emails = Email.objects.bulk_create(
                [_email(rng, boxes, now, span, count, start + offset + i, names, weights) for i in range(n)]
            )
            _deliveries(rng, emails, endpoints)


def _email(rng, boxes, now, span, count, i, names, weights) -> Email:  # type: ignore[no-untyped-def]
    decision = rng.choices(names, weights)[0]
    received = now - dt.timedelta(seconds=span * (1 - (i + rng.random()) / max(count, 1)))
    links = [{"provider": "dropbox", "raw_url": f"https://www.dropbox.com/scl/fo/b{i}/AA?rlkey=k{i}&dl=0"}]
    return Email(
        mailbox=boxes[i % 7 == 0],
        identity=f"<seed-{i}@bench>",
        email_id=f"{i:032x}",
        uid=i + 1,
        uidvalidity=1,
        message_id=f"<seed-{i}@bench>",
        subject=f"Média Solution - Missions Recadrage - Lot {i}",
        sender="missions@media-solution.example" if decision != "skipped_sender" else f"someone{i}@else.example",
        received_at=received,
        detector="recadrage" if decision in ("delivered", "held", "failed") else "",
        delivery_time="09h00",
        links=links,
        text=TEXT,
        decision=decision,
        reason=f"{decision} (seeded)",
        size=7600,
    )


def _deliveries(rng: random.Random, emails: list[Email], endpoints: list[Endpoint]) -> None:
    deliveries, attempts, transfers = [], [], []
    for email in emails:
        status = {"delivered": "delivered", "held": "held", "failed": "failed"}.get(email.decision)
        if status is None:
            continue
        latency = dt.timedelta(seconds=rng.lognormvariate(-0.7, 0.8))
        delivery = Delivery(
            email=email,
            endpoint=endpoints[0] if rng.random() < 0.9 else endpoints[1],
            status=status,
            created=email.received_at,
            attempt_count=0 if status == "held" else 1 + (status == "failed") * 5,
            next_attempt_at=email.received_at + dt.timedelta(hours=12) if status == "held" else None,
            delivered_at=email.received_at + latency if status == "delivered" else None,
            payload="{}",
        )
        deliveries.append(delivery)
        transfers.append(
            LinkTransfer(
                email=email,
                source_url=email.links[0]["raw_url"],
                normalized_url=email.links[0]["raw_url"],
                provider="dropbox",
                status="success" if rng.random() < 0.95 else "failed",
                deadline=email.received_at,
                created=email.received_at,
            )
        )
    Delivery.objects.bulk_create(deliveries)
    for delivery in deliveries:
        for n in range(delivery.attempt_count):
            ok = delivery.status == "delivered" and n == delivery.attempt_count - 1
            attempts.append(
                Attempt(
                    delivery=delivery,
                    started=delivery.created + dt.timedelta(seconds=n),
                    duration_ms=rng.randint(20, 400),
                    status_code=200 if ok else 503,
                    outcome="delivered" if ok else "failed",
                )
            )
    Attempt.objects.bulk_create(attempts)
    LinkTransfer.objects.bulk_create(transfers)
