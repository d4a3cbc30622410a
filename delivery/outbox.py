"""The transactional outbox: deliveries are planned in the transaction that records an email.

`plan()` runs inside mail's transaction, so an email and its Delivery rows commit together
(or not at all); the sender job is enqueued only once they are committed.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone
from django_q.tasks import async_task

from delivery import routing
from delivery.models import Delivery, Endpoint, SendingSchedule
from delivery.schedule import outcome

logger = logging.getLogger(__name__)

EMAIL_FIELDS = ["decision", "reason", "held_until"]


class Planner:
    """Decides where accepted emails go, loading the schedule and the rules once per batch."""

    def __init__(self) -> None:
        self.now = timezone.now()
        self.schedule = SendingSchedule.load()
        self.rules = routing.active_rules()
        self.defaults = routing.default_endpoints()

    def decide(self, email: Any) -> list[Delivery]:
        """Set the email's decision and return its (unsaved) Delivery rows."""
        if not email.links and not settings.ALLOW_CUSTOM_WEBHOOK_WITHOUT_LINKS:
            _set(email, "skipped_no_links", "No delivery links (ALLOW_CUSTOM_WEBHOOK_WITHOUT_LINKS is off).")
            return []
        result = outcome(self.schedule, self.now, email.detector, email.urgent)
        if result.action == "skip":
            _set(email, "skipped_outside_window", result.reason)
            return []
        endpoints, rule = routing.targets(email, self.rules, self.defaults)
        if not endpoints:
            _set(email, "skipped_no_endpoint", self._no_endpoint_reason())
            return []
        rule_info = {"id": rule.pk, "name": rule.name, "priority": rule.priority} if rule else None
        held = result.action == "hold"
        names = ", ".join(e.name for e in endpoints)
        if held:
            email.held_until = result.release_at
            _set(email, "held", f"{result.reason} To: {names}.")
        else:
            _set(email, "accepted", f"{email.reason} {result.reason} To: {names}.")
        return [
            Delivery(
                endpoint=endpoint,
                routing_rule=rule_info,
                status="held" if held else "pending",
                wait_for_window=result.wait_for_window,
                next_attempt_at=result.release_at if held else self.now,
                reason=result.reason,
            )
            for endpoint in endpoints
        ]

    def _no_endpoint_reason(self) -> str:
        fix = "then reprocess this email (Mail › Emails, or the dashboard)."  # noqa: RUF001
        if not Endpoint.objects.filter(enabled=True).exists():
            return f"No enabled webhook endpoint exists: add one under Delivery › Endpoints, {fix}"  # noqa: RUF001
        return (
            "No default endpoint, and no routing rule matched this email: tick “Is default” on the endpoint "
            f"that should receive such mail (Delivery › Endpoints) or add a rule, {fix}"  # noqa: RUF001
        )


def plan(email: Any, kick: bool = True) -> list[Delivery]:
    """Decide on one saved, accepted email and create its Delivery rows.

    The sender job is enqueued when the transaction commits (`kick=False`: the caller
    enqueues it once for a whole batch).
    """
    deliveries = Planner().decide(email)
    email.save(update_fields=EMAIL_FIELDS)
    for delivery in deliveries:
        delivery.email = email
    Delivery.objects.bulk_create(deliveries)
    if kick and deliveries:
        transaction.on_commit(kick_sender)
    return deliveries


def _set(email: Any, decision: str, reason: str) -> None:
    email.decision, email.reason = decision, reason.strip()


def kick_sender() -> None:
    """Start the sender now. If the job broker is down, the minute schedule sends later."""
    try:
        async_task("delivery.tasks.send_due", task_name="send due deliveries")
    except (redis.RedisError, DatabaseError, OSError) as e:
        logger.warning("CUSTOM_WEBHOOK: could not enqueue the sender (%s); the scheduled job will send", e)
