"""The checks behind /health. Each returns a detail dict with an `ok` flag."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

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


def all_checks() -> dict[str, Check]:
    checks: dict[str, Check] = {"database": check_database}
    if settings.REDIS_URL:
        checks["redis"] = check_redis
    checks["qcluster"] = check_qcluster
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
