"""The checks behind /health. Each returns a detail dict with an `ok` flag.

Besides the database, Redis and the job cluster, every mailbox is a check of its own
(`mailbox:<name>`): an enabled mailbox inside its active hours fails when no poll cycle
succeeded for HEALTH_MAILBOX_MAX_AGE_SECONDS; outside its hours it is reported, not failed.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from mail.models import Mailbox
from signalserver.models import WorkerHeartbeat

Check = Callable[[], dict[str, Any]]


def check_database() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    return {"ok": True, "vendor": connection.vendor}


def check_redis() -> dict[str, Any]:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as e:
        return {"ok": False, "error": f"{type(e).__name__}: {e}"}
    finally:
        client.close()
    return {"ok": True}


def check_qcluster() -> dict[str, Any]:
    try:
        beat = WorkerHeartbeat.latest()
    except DatabaseError as e:
        return {"ok": False, "error": f"cannot read heartbeats: {e}"}
    if beat is None:
        return {"ok": False, "error": "no job cluster has ever reported (is `manage.py qcluster` running?)"}
    age = (timezone.now() - beat.seen_at).total_seconds()
    limit = settings.QCLUSTER_HEARTBEAT_MAX_AGE_SECONDS
    detail = {"last_seen": beat.seen_at.isoformat(), "age_seconds": round(age, 1), "host": beat.host}
    if age > limit:
        return {"ok": False, "error": f"last heartbeat {age:.0f} s ago (limit {limit} s)", **detail}
    return {"ok": True, **detail}


def mailbox_is_late(mailbox: Mailbox, now: dt.datetime) -> float | None:
    """Seconds since the mailbox's last good cycle (or its creation) when that is too long for a
    mailbox active now and for the whole allowed age before; otherwise None."""
    limit = dt.timedelta(seconds=settings.HEALTH_MAILBOX_MAX_AGE_SECONDS)
    age = now - (mailbox.last_good_cycle or mailbox.created)
    if not mailbox.enabled or age <= limit or not mailbox.is_active(now) or not mailbox.is_active(now - limit):
        return None
    return age.total_seconds()


def check_mailbox(mailbox: Mailbox, now: dt.datetime) -> dict[str, Any]:
    last = mailbox.last_good_cycle
    detail: dict[str, Any] = {
        "last_good_cycle": last.isoformat() if last else None,
        "age_seconds": round((now - last).total_seconds(), 1) if last else None,
    }
    if not mailbox.enabled:
        return {"ok": True, "state": "disabled", **detail}
    if not mailbox.is_active(now):
        return {"ok": True, "state": "outside its active hours", **detail}
    late = mailbox_is_late(mailbox, now)
    if late is not None:
        limit = settings.HEALTH_MAILBOX_MAX_AGE_SECONDS
        error = f"no good poll cycle for {late:.0f} s (limit {limit} s)"
        return {"ok": False, "state": "late", "error": error, **detail}
    return {"ok": True, "state": "active", **detail}


def _unreadable(error: DatabaseError) -> dict[str, Any]:
    return {"ok": False, "error": f"cannot read mailboxes: {error}"}


def mailbox_checks() -> dict[str, Check]:
    try:
        mailboxes = list(Mailbox.objects.all())
    except DatabaseError as e:
        return {"mailboxes": functools.partial(_unreadable, e)}
    now = timezone.now()
    return {f"mailbox:{m.name}": functools.partial(check_mailbox, m, now) for m in mailboxes}


def all_checks() -> dict[str, Check]:
    checks: dict[str, Check] = {"database": check_database}
    if settings.REDIS_URL:
        checks["redis"] = check_redis
    checks["qcluster"] = check_qcluster
    checks.update(mailbox_checks())
    return checks


def run_checks() -> tuple[bool, dict[str, Any]]:
    results = {name: check() for name, check in all_checks().items()}
    failed = [name for name, result in results.items() if not result["ok"]]
    body = {
        "status": "error" if failed else "ok",
        "failed": failed,
        "checks": results,
        "time_utc": dt.datetime.now(dt.UTC).isoformat(),
    }
    return not failed, body
