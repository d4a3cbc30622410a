"""Waking the sender when the next delivery is due, not at the next once-a-minute run.

A failed attempt is retried after about 5 s; a held delivery goes when the window opens.
The once-a-minute `send_due` would send them up to a minute late, so after each run the
sender arms this timer with the next due time. When that time is near (within `HORIZON`,
which the minute runs cover), one job waits for it on a worker and sends; further times are
armed by a later run as they come near. At most one job waits at a time, whatever the number
of due deliveries: it reads the wake-up time each second and sends, then waits for the next.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets

from django.db.models import Min, Q
from django.utils import timezone
from django_q.tasks import async_task

from delivery.models import Delivery, SenderWake

logger = logging.getLogger(__name__)

# Scheduled runs come at most about 90 s apart (every minute, picked up every 30 s).
HORIZON = dt.timedelta(seconds=90)
# A waiter that has not renewed its claim for this long is gone (a killed worker).
CLAIM = dt.timedelta(seconds=30)


def next_due_at(now: dt.datetime) -> dt.datetime | None:
    """When the next waiting delivery is due (None: none is waiting). It may be due already:
    one that became due while the sender finished its last batch is sent at once."""
    unclaimed = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    waiting = Delivery.objects.filter(unclaimed, status__in=("pending", "held"))
    found: dt.datetime | None = waiting.aggregate(at=Min("next_attempt_at"))["at"]
    return found


def arm(when: dt.datetime | None) -> None:
    """See that the sender runs at `when`: now when due, through the waiting job when near."""
    now = timezone.now()
    if when is None or when - now > HORIZON:
        return  # nothing waits, or a later scheduled run arms it
    row, _ = SenderWake.objects.get_or_create(pk=1)
    SenderWake.objects.filter(Q(wake_at__isnull=True) | Q(wake_at__gt=when), pk=row.pk).update(wake_at=when)
    # The waiter, if any, reads wake_at each second; it gives up its claim only while
    # wake_at is unchanged, so either it sees this time or a new waiter is started here.
    if SenderWake.objects.filter(Q(waiter="") | Q(waiter_until__lt=now), pk=row.pk).exists():
        start_waiter()


def start_waiter() -> None:
    async_task("delivery.tasks.wake_sender", task_name="wake the sender")


def claim(token: str) -> bool:
    now = timezone.now()
    free = Q(waiter="") | Q(waiter_until__lt=now)
    return SenderWake.objects.filter(free, pk=1).update(waiter=token, waiter_until=now + CLAIM) == 1


def renew(token: str) -> None:
    SenderWake.objects.filter(pk=1, waiter=token).update(waiter_until=timezone.now() + CLAIM)


def wake_at() -> dt.datetime | None:
    found: dt.datetime | None = SenderWake.objects.filter(pk=1).values_list("wake_at", flat=True).first()
    return found


def took(when: dt.datetime) -> bool:
    """Clear the wake-up time `when`, now being served (False: it moved meanwhile)."""
    return SenderWake.objects.filter(pk=1, wake_at=when).update(wake_at=None) == 1


def abandon(token: str) -> None:
    SenderWake.objects.filter(pk=1, waiter=token).update(waiter="", waiter_until=None)


def release(token: str, seen: dt.datetime | None) -> bool:
    """Give up the claim, unless the wake-up time changed since it was read as `seen`."""
    unchanged = Q(wake_at__isnull=True) if seen is None else Q(wake_at=seen)
    return SenderWake.objects.filter(unchanged, pk=1, waiter=token).update(waiter="", waiter_until=None) == 1


def new_token() -> str:
    return secrets.token_hex(8)
