"""The poller's singleton lease: one active poller per mailbox across processes and containers.

The database lease row is the authority, so pollers agree even while Redis is down. With
REDIS_URL the lease is also taken in Redis first (`SET NX PX`, renewed and released only by
compare-and-set in Lua): contenders are turned away there without touching the database,
and operators can read the holder with `redis-cli GET render_signal:poller_lock`.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from mail.models import PollerLease

logger = logging.getLogger(__name__)

_RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def redis_key(name: str, first: bool) -> str:
    return settings.POLLER_LOCK_KEY if first else f"{settings.POLLER_LOCK_KEY}:{name}"


class Lease:
    def __init__(self, name: str, redis_key: str, seconds: int | None = None) -> None:
        self.name = name
        self.redis_key = redis_key
        self.seconds = seconds or settings.POLLER_LEASE_SECONDS
        self.token = f"{secrets.token_hex(8)} pid={os.getpid()} host={socket.gethostname()}"
        self.held = False
        self._redis = (
            redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
            if (settings.REDIS_URL)
            else None
        )

    # Redis part: best effort, a contender is turned away when another token holds the key.
    def _redis_take(self) -> bool | None:
        """True: taken or already ours; False: held by another; None: Redis unavailable."""
        if self._redis is None:
            return None
        try:
            if self._redis.set(self.redis_key, self.token, nx=True, px=self.seconds * 1000):
                return True
            return bool(self._redis.eval(_RENEW_LUA, 1, self.redis_key, self.token, self.seconds * 1000))
        except redis.RedisError as e:
            logger.warning("BG_POLLER: Redis unavailable for the lease (%s); using the database lease", e)
            return None

    def _redis_release(self) -> None:
        if self._redis is None:
            return
        try:
            self._redis.eval(_RELEASE_LUA, 1, self.redis_key, self.token)
        except redis.RedisError as e:
            logger.warning("BG_POLLER: could not release the Redis lease (%s); it expires by itself", e)

    # Database part: the authority.
    def _db_claim(self) -> bool:
        now = timezone.now()
        expires = now + dt.timedelta(seconds=self.seconds)
        try:
            with transaction.atomic():
                PollerLease.objects.get_or_create(name=self.name)
        except IntegrityError:
            pass  # another process created the row at the same moment: fine
        claimed = PollerLease.objects.filter(
            Q(expires_at__lt=now) | Q(holder="") | Q(holder=self.token), name=self.name
        ).update(holder=self.token, expires_at=expires)
        return claimed == 1

    def _db_release(self) -> None:
        PollerLease.objects.filter(name=self.name, holder=self.token).update(holder="", expires_at=timezone.now())

    def acquire(self) -> bool:
        if not self.held and not self._may_be_free():
            return False
        in_redis = self._redis_take()
        if in_redis is False:
            return False
        if not self._db_claim():
            if in_redis:
                self._redis_release()
            return False
        if not self.held:
            where = "Redis" if in_redis else "database"
            logger.info("BG_POLLER: Singleton lock acquired (%s) pid=%d mailbox=%s", where, os.getpid(), self.name)
            PollerLease.objects.filter(name=self.name, successor=self.token).update(successor="")
        self.held = True
        return True

    def _may_be_free(self) -> bool:
        """A read before the claim, so a contender polling for the lease does not write each time."""
        row = PollerLease.objects.filter(name=self.name).values_list("holder", "expires_at").first()
        return row is None or row[0] in ("", self.token) or row[1] < timezone.now()

    # What others ask of the holder (read by the running session about once a second).
    def requests(self) -> LeaseRequests:
        row = PollerLease.objects.filter(name=self.name).values_list("wake_requested_at", "successor").first()
        if row is None:
            return LeaseRequests(None, "")
        return LeaseRequests(row[0], row[1] if row[1] != self.token else "")

    def wake_done(self, requested_at: dt.datetime) -> None:
        """Forget a wake-up request once served (a newer one stays for the next look)."""
        PollerLease.objects.filter(name=self.name, wake_requested_at=requested_at).update(wake_requested_at=None)

    def announce_successor(self) -> None:
        """Tell the holder that this contender is connected and ready to take over."""
        PollerLease.objects.filter(name=self.name).exclude(holder=self.token).update(successor=self.token)

    def forget_successor(self) -> None:
        PollerLease.objects.filter(name=self.name, holder=self.token).update(successor="")

    def renew(self) -> bool:
        """Extend the lease; False means it was lost and the holder must stop at once."""
        if not self.held:
            return False
        if not self._db_claim():
            logger.warning("BG_POLLER: lease on %s lost to another poller", self.name)
            self.held = False
            return False
        self._redis_take()
        return True

    def release(self) -> None:
        if self.held:
            self._db_release()
            self._redis_release()
            self.held = False
            logger.info("BG_POLLER: Singleton lock released pid=%d mailbox=%s", os.getpid(), self.name)

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()


@dataclass(frozen=True)
class LeaseRequests:
    wake_requested_at: dt.datetime | None
    successor: str


def request_wake(name: str) -> bool:
    """Ask the session holding the lease to fetch now; False when nobody holds it."""
    now = timezone.now()
    live = PollerLease.objects.filter(name=name, expires_at__gte=now).exclude(holder="")
    return live.update(wake_requested_at=now) == 1


def holder(name: str) -> str:
    """Who holds the lease now ('' when free), for the dashboard and the scheduled job."""
    lease = PollerLease.objects.filter(name=name, expires_at__gte=timezone.now()).exclude(holder="").first()
    return lease.holder if lease else ""
