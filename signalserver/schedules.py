"""Recurring jobs, declared idempotently by name after every `migrate`."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

# name -> (function path, every N minutes)
SCHEDULES: dict[str, tuple[str, int]] = {
    "heartbeat": ("signalserver.tasks.heartbeat", 1),
    "poll-mailboxes": ("mail.tasks.poll_mailboxes", 1),
    "purge-raw-messages": ("mail.tasks.purge_raw_messages", 60),
    "send-due-deliveries": ("delivery.tasks.send_due", 1),
    "purge-stored-links": ("delivery.tasks.purge_stored_links", 60),
    "make-scenarios": ("scenarios.tasks.sync_scenarios", 1),
}


def declare_schedules(**kwargs: Any) -> None:
    from django_q.models import Schedule

    for name, (func, minutes) in SCHEDULES.items():
        Schedule.objects.update_or_create(
            name=name,
            defaults={
                "func": func,
                "schedule_type": Schedule.MINUTES,
                "minutes": minutes,
                "repeats": -1,
                "next_run": timezone.now(),
            },
        )
