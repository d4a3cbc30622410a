from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone


class WorkerHeartbeat(models.Model):
    """Last sign of life of each job cluster, shared by every container using the database."""

    name = models.CharField(max_length=200, unique=True)
    host = models.CharField(max_length=255, blank=True)
    pid = models.IntegerField(null=True)
    seen_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} ({self.host} pid={self.pid})"

    @classmethod
    def beat(cls, name: str, host: str, pid: int) -> None:
        cls.objects.update_or_create(name=name, defaults={"host": host, "pid": pid, "seen_at": timezone.now()})

    @classmethod
    def latest(cls) -> WorkerHeartbeat | None:
        return cls.objects.order_by("-seen_at").first()


def hash_token(token: str) -> str:
    """Tokens are stored as SHA-256 hashes: a copy of the database opens no session."""
    return hashlib.sha256(token.encode()).hexdigest()


MAGIC_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")

# Why a magic link was refused, and what the person who opened it reads.
REFUSALS = {
    "malformed": "This sign-in link is incomplete or altered. Copy the whole link, or ask for a new one.",
    "unknown": "This sign-in link is not known. Ask for a new one.",
    "expired": "This sign-in link has expired. Ask for a new one.",
    "consumed": "This sign-in link was already used: each one-time link works once. Ask for a new one.",
    "revoked": "This sign-in link was revoked. Ask for a new one.",
    "inactive": "The account this link belongs to is disabled.",
}


class LinkRefused(Exception):
    def __init__(self, state: str, link: MagicLink | None = None) -> None:
        super().__init__(state)
        self.state = state
        self.message = REFUSALS[state]
        self.link = link


class MagicLink(models.Model):
    """A sign-in link: only the hash of its token is kept. One-time with a TTL, or reusable until revoked."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="magic_links")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    one_time = models.BooleanField(default=True, help_text="Off: reusable until revoked.")
    created = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150, blank=True, help_text="Who or what made it (dashboard, admin, cli)")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: valid until revoked.")
    used_at = models.DateTimeField(null=True, blank=True, help_text="First use")
    last_used_at = models.DateTimeField(null=True, blank=True)
    use_count = models.PositiveIntegerField(default=0)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{'One-time' if self.one_time else 'Long-lived'} link #{self.pk} for {self.user}"

    @classmethod
    def issue(
        cls, user: Any, ttl_seconds: int | None = None, permanent: bool = False, created_by: str = ""
    ) -> tuple[MagicLink, str]:
        """A new saved link and its token (shown once: only the hash is stored)."""
        link = cls(user=user, created_by=created_by[:150])
        token = link.arm(ttl_seconds, permanent)
        link.save()
        return link, token

    def arm(self, ttl_seconds: int | None = None, permanent: bool = False) -> str:
        """Give this (unsaved) link a fresh token; returns the token."""
        token = secrets.token_urlsafe(32)
        ttl = max(60, ttl_seconds or settings.MAGIC_LINK_TTL_SECONDS)
        self.token_hash, self.one_time, self.created = hash_token(token), not permanent, timezone.now()
        self.expires_at = None if permanent else self.created + dt.timedelta(seconds=ttl)
        return token

    @property
    def kind(self) -> str:
        return "one-time" if self.one_time else "long-lived"

    def state(self, now: dt.datetime | None = None) -> str:
        now = now or timezone.now()
        if self.revoked_at:
            return "revoked"
        if self.one_time and self.used_at:
            return "consumed"
        if self.expires_at and self.expires_at <= now:
            return "expired"
        if not self.user.is_active:
            return "inactive"
        return "valid"

    @classmethod
    def lookup(cls, token: str) -> MagicLink:
        """The link a token opens, or LinkRefused saying why not. Changes nothing."""
        if not MAGIC_TOKEN_RE.match(token):
            raise LinkRefused("malformed")
        link = cls.objects.select_related("user").filter(token_hash=hash_token(token)).first()
        if link is None:
            raise LinkRefused("unknown")
        state = link.state()
        if state != "valid":
            raise LinkRefused(state, link)
        return link

    @classmethod
    def redeem(cls, token: str) -> MagicLink:
        """Use the link; of two simultaneous redemptions of a one-time link exactly one wins."""
        link = cls.lookup(token)
        now = timezone.now()
        usable = cls.objects.filter(pk=link.pk, revoked_at=None).filter(
            models.Q(expires_at=None) | models.Q(expires_at__gt=now)
        )
        if link.one_time:
            usable = usable.filter(used_at=None)
        updated = usable.update(
            used_at=Coalesce("used_at", models.Value(now)), last_used_at=now, use_count=F("use_count") + 1
        )
        if updated != 1:
            link.refresh_from_db()
            raise LinkRefused(link.state(now), link)
        return link

    def revoke(self) -> bool:
        return MagicLink.objects.filter(pk=self.pk, revoked_at=None).update(revoked_at=timezone.now()) == 1

    @classmethod
    def revoke_all(cls, user: Any) -> int:
        return cls.objects.filter(user=user, revoked_at=None).update(revoked_at=timezone.now())


API_SCOPES = (
    ("deploy", "Trigger deployments"),
    ("test_r2", "Test the R2 offload (POST /api/test-r2)"),
    ("ingress", "Push mail from the Gmail Apps Script (POST /api/ingress/gmail)"),
    ("metrics", "Read the metrics (GET /api/metrics, /metrics)"),
)
API_TOKEN_PREFIX = "sst_"  # a marker, not a secret  # noqa: S105  # nosec B105


class ApiToken(models.Model):
    """A credential for machine callers (CI, scripts), sent as `Authorization: Bearer sst_…`."""

    name = models.CharField(max_length=100, unique=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False, help_text="Start of the token, to tell tokens apart")
    scopes = models.CharField(max_length=200, help_text="What the token may do, comma-separated")
    created = models.DateTimeField(default=timezone.now)
    created_by = models.CharField(max_length=150, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: valid until revoked.")
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, name: str, scopes: list[str], created_by: str = "") -> tuple[ApiToken, str]:
        row = cls(name=name, created_by=created_by[:150])
        token = row.arm(scopes)
        row.save()
        return row, token

    def arm(self, scopes: list[str]) -> str:
        """Give this (unsaved) row a fresh token with these scopes; returns the token, shown once."""
        token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
        self.token_hash, self.prefix, self.scopes = hash_token(token), token[:12], ",".join(scopes)
        return token

    def scope_list(self) -> list[str]:
        return [s for s in self.scopes.split(",") if s]

    @classmethod
    def authenticate(cls, token: str, scope: str) -> ApiToken | None:
        """The live token with this scope, or None; records its use."""
        if not token.startswith(API_TOKEN_PREFIX):
            return None
        now = timezone.now()
        row = (
            cls.objects.filter(token_hash=hash_token(token), revoked_at=None)
            .filter(models.Q(expires_at=None) | models.Q(expires_at__gt=now))
            .first()
        )
        if row is None or scope not in row.scope_list():
            return None
        cls.objects.filter(pk=row.pk).update(last_used_at=now)
        return row


class LoginFailure(models.Model):
    """A failed password login, counted per client address and per username to slow guessing."""

    ip = models.GenericIPAddressField(null=True)
    username = models.CharField(max_length=150)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # The throttle counts recent failures of one address or one username.
            models.Index(fields=["ip", "at"], name="signalserver_failure_ip"),
            models.Index(fields=["username", "at"], name="signalserver_failure_user"),
        ]

    def __str__(self) -> str:
        return f"{self.username} from {self.ip} at {self.at:%Y-%m-%d %H:%M:%S}"

    @classmethod
    def record(cls, ip: str | None, username: str) -> None:
        now = timezone.now()
        cls.objects.create(ip=ip, username=username.lower()[:150], at=now)
        cls.objects.filter(at__lt=now - dt.timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)).delete()

    @classmethod
    def wait_seconds(cls, ip: str | None, username: str) -> int:
        """0 when a login may be tried, else how long until the oldest counted failure expires."""
        window = dt.timedelta(seconds=settings.LOGIN_FAILURE_WINDOW_SECONDS)
        now = timezone.now()
        recent = cls.objects.filter(at__gt=now - window)
        limit = settings.LOGIN_FAILURE_LIMIT
        wait = 0
        for scope in (recent.filter(ip=ip) if ip else None, recent.filter(username=username.lower()[:150])):
            if scope is None:
                continue
            times = list(scope.order_by("-at").values_list("at", flat=True)[:limit])
            if len(times) >= limit:
                wait = max(wait, int((times[-1] + window - now).total_seconds()) + 1)
        return wait
