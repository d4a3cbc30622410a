from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
import uuid
import zoneinfo
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.timezone import now

from delivery.fields import EncryptedTextField

SUCCESS_RULES = (
    ("2xx", "Any 2xx status"),
    ("json_success", "2xx and a JSON body with success: true (the original receiver)"),
)
DELIVERY_STATUSES = (
    ("pending", "Pending"),
    ("held", "Held until sending is allowed"),
    ("sending", "Sending"),
    ("delivered", "Delivered"),
    ("failed", "Failed"),
)
WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TIME_RE = re.compile(r"^(\d{1,2})[h:](\d{2})$", re.I)


def new_webhook_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def new_signing_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def validate_signing_secret(value: str) -> None:
    if not value.startswith("whsec_"):
        raise ValidationError("A signing secret starts with whsec_")
    try:
        if len(base64.b64decode(value[len("whsec_") :], validate=True)) < 16:
            raise ValidationError("The signing secret is too short (at least 16 bytes)")
    except ValueError:
        raise ValidationError("The part after whsec_ must be base64") from None


def parse_window_time(value: str) -> dt.time | None:
    """`HHhMM` or `HH:MM` (0-23, 0-59); None when empty or malformed."""
    match = _TIME_RE.match(value.strip())
    if not match:
        return None
    hour, minute = int(match.group(1)), int(match.group(2))
    if hour > 23 or minute > 59:
        return None
    return dt.time(hour, minute)


def validate_window_time(value: str) -> None:
    if value and parse_window_time(value) is None:
        raise ValidationError(f"{value!r} is not a time: use HHhMM or HH:MM, e.g. 09h00 or 18:30")


class Endpoint(models.Model):
    """A webhook receiver and its signing secret."""

    name = models.CharField(max_length=100, unique=True)
    url = models.URLField(max_length=2000)
    secret = EncryptedTextField(validators=[validate_signing_secret], default=new_signing_secret)
    enabled = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False, help_text="Receives every accepted email (unless a rule stops it).")
    timeout_seconds = models.PositiveIntegerField(default=30, validators=[MinValueValidator(1), MaxValueValidator(300)])
    rate_limit_per_hour = models.PositiveIntegerField(
        default=0, help_text="0 = no limit. Over the limit deliveries wait; they are never dropped."
    )
    success_rule = models.CharField(max_length=20, choices=SUCCESS_RULES, default="2xx")
    include_email_content = models.BooleanField(default=True, help_text="Send the full text as email_content.")
    created = models.DateTimeField(default=now)
    last_test_result = models.TextField(blank=True, editable=False)
    last_test_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        # The first endpoint receives every accepted email: without a default, mail that
        # matches no routing rule would have nowhere to go.
        if self._state.adding and not Endpoint.objects.exists():
            self.is_default = True
        super().save(*args, **kwargs)

    def clean(self) -> None:
        from delivery import http

        try:
            http.check_target(self.url)
        except http.HttpError as e:
            raise ValidationError({"url": e.message}) from None

    @classmethod
    def default_missing(cls, enabled: Sequence[Endpoint] | None = None) -> bool:
        """True when endpoints are enabled but none of them is a default one (`enabled`: the
        enabled endpoints, when the caller has them already)."""
        endpoints = list(cls.objects.filter(enabled=True)) if enabled is None else enabled
        return bool(endpoints) and not any(e.is_default for e in endpoints)

    def rotate_secret(self) -> str:
        self.secret = new_signing_secret()
        self.save(update_fields=["secret"])
        return str(self.secret)


class SendingSchedule(models.Model):
    """When webhooks may go (one row): a global switch, a daily window and absence days."""

    ABSENCE_HELP = "Absence Globale: nothing is sent on these days."
    sending_enabled = models.BooleanField(default=True, help_text="Off: every delivery waits until switched on.")
    window_start = models.CharField(max_length=5, blank=True, validators=[validate_window_time], help_text="e.g. 09h00")
    window_end = models.CharField(
        max_length=5, blank=True, validators=[validate_window_time], help_text="e.g. 19h00; before the start wraps."
    )
    absence_days = models.CharField(max_length=100, blank=True, help_text=ABSENCE_HELP)
    timezone = models.CharField(max_length=64, default="Europe/Paris")

    class Meta:
        verbose_name = "sending schedule"

    def __str__(self) -> str:
        return "Sending schedule"

    def clean(self) -> None:
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValidationError({"timezone": f"{self.timezone!r} is not a known time zone"}) from None
        unknown = [d for d in self.absence_day_list() if d not in WEEKDAY_NAMES]
        if unknown:
            raise ValidationError({"absence_days": f"Unknown weekday(s): {', '.join(unknown)}"})

    @classmethod
    def load(cls) -> SendingSchedule:
        schedule = cls.objects.order_by("pk").first()
        if schedule is None:
            schedule = cls.objects.create(**settings.LEGACY_SENDING_SCHEDULE)
        return schedule

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def absence_day_list(self) -> list[str]:
        return [d.strip().lower() for d in self.absence_days.split(",") if d.strip()]

    def window(self) -> tuple[dt.time, dt.time] | None:
        """The window, or None when either side is missing or malformed (no constraint)."""
        start, end = parse_window_time(self.window_start), parse_window_time(self.window_end)
        return (start, end) if start is not None and end is not None else None


class RoutingRule(models.Model):
    """Send matching emails to an endpoint. Rules are tried in order; the first match wins."""

    PRIORITIES = (("normal", "Normal"), ("high", "High"))

    name = models.CharField(max_length=100)
    order = models.PositiveIntegerField(default=0)
    enabled = models.BooleanField(default=True)
    endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="rules")
    priority = models.CharField(max_length=10, choices=PRIORITIES, default="normal")
    stop_processing = models.BooleanField(default=False, help_text="Do not also send to the default endpoint.")

    class Meta:
        ordering = ["order", "pk"]

    def __str__(self) -> str:
        return self.name


class RuleCondition(models.Model):
    FIELDS = (("sender", "Sender address"), ("subject", "Subject"), ("body", "Body"))
    OPERATORS = (("contains", "contains"), ("equals", "equals"), ("regex", "matches the regular expression"))

    rule = models.ForeignKey(RoutingRule, on_delete=models.CASCADE, related_name="conditions")
    field = models.CharField(max_length=10, choices=FIELDS)
    operator = models.CharField(max_length=10, choices=OPERATORS)
    value = models.CharField(max_length=500)
    case_sensitive = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.field} {self.operator} {self.value!r}"

    def clean(self) -> None:
        from delivery.routing import compile_pattern

        if self.operator == "regex":
            try:
                compile_pattern(self.value, self.case_sensitive)
            except ValueError as e:
                raise ValidationError({"value": str(e)}) from None


class Delivery(models.Model):
    """One email to one endpoint: the outbox row. Its webhook_id is stable across retries."""

    # Unique by a constraint (delivery_unique_webhook_id), not `unique=True`: on PostgreSQL that
    # also adds a second index for LIKE queries, which nothing runs and every write maintains.
    webhook_id = models.CharField(max_length=64, editable=False, default=new_webhook_id)
    # Indexed by the unique (email, endpoint) constraint, which starts with it.
    email = models.ForeignKey("mail.Email", on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    # Indexed by delivery_endpoint_sent (endpoint, status, delivered_at).
    endpoint = models.ForeignKey(Endpoint, on_delete=models.PROTECT, related_name="deliveries", db_index=False)
    routing_rule = models.JSONField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=DELIVERY_STATUSES, default="pending")
    wait_for_window = models.BooleanField(default=False, help_text="Sent only inside the sending window.")
    backlog = models.BooleanField(
        default=False, help_text="Part of a backlog (mail that had waited): sent after mail arriving now."
    )
    reason = models.TextField(blank=True)
    payload = models.TextField(blank=True, help_text="The JSON body, built at the first attempt, then sent unchanged.")
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    claim = models.CharField(max_length=32, blank=True, editable=False)
    created = models.DateTimeField(default=now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name_plural = "deliveries"
        # One delivery per email and endpoint: reprocessing an email never sends it twice.
        constraints = [
            models.UniqueConstraint(fields=["email", "endpoint"], name="delivery_one_per_endpoint"),
            models.UniqueConstraint(fields=["webhook_id"], name="delivery_unique_webhook_id"),
        ]
        indexes = [
            # The sender's work queue: what is due, oldest first.
            models.Index(fields=["status", "next_attempt_at"], name="delivery_due"),
            # The order the sender claims in: mail arriving now, then the oldest.
            models.Index(
                fields=["backlog", "next_attempt_at", "id"],
                condition=models.Q(status__in=("pending", "held", "sending")),
                name="delivery_queue",
            ),
            # Also counts each endpoint's deliveries by status (/metrics) from the index alone.
            models.Index(fields=["endpoint", "status", "delivered_at"], name="delivery_endpoint_sent"),
            # /metrics and the dashboard's charts: counts by status and endpoint, time to delivery.
            models.Index(fields=["status", "delivered_at", "endpoint", "created"], name="delivery_outcome"),
            # The dashboard's failed list (newest first) and deliveries per hour, by status.
            models.Index(fields=["status", "-created"], name="delivery_status_created"),
        ]

    def __str__(self) -> str:
        return f"{self.webhook_id} → {self.endpoint_id} ({self.status})"

    @property
    def retrying(self) -> bool:
        return self.status in ("pending", "sending") and self.attempt_count > 0


class SenderWake(models.Model):
    """When the sender must next run, and the one job waiting for that moment (one row).

    A retry due in 5 s, or a window opening at 09:00, is sent at its time rather than at the
    next once-a-minute run (see delivery/timer.py).
    """

    wake_at = models.DateTimeField(null=True, blank=True)
    waiter = models.CharField(max_length=64, blank=True)
    waiter_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Sender wake-up at {self.wake_at or '—'}"


class Attempt(models.Model):
    """One HTTP try of a delivery: the webhook log."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempts")
    started = models.DateTimeField(default=now)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response_snippet = models.TextField(blank=True)
    error = models.TextField(blank=True)
    outcome = models.CharField(max_length=20, default="sending")

    class Meta:
        ordering = ["-started", "-id"]
        # The dashboard's endpoint success rates read the last 24 hours of attempts.
        indexes = [models.Index(fields=["started"], name="delivery_attempt_started")]

    def __str__(self) -> str:
        return f"Attempt {self.pk} of {self.delivery_id}: {self.outcome}"


class LinkTransfer(models.Model):
    """Copying one link of an email to R2 through the Worker; deliveries wait for these."""

    STATUSES = (("pending", "Pending"), ("running", "Running"), ("success", "Copied"), ("failed", "Failed"))

    email = models.ForeignKey("mail.Email", on_delete=models.CASCADE, related_name="transfers")
    source_url = models.CharField(max_length=2000, help_text="The link as found in the email")
    normalized_url = models.CharField(max_length=2000)
    provider = models.CharField(max_length=40)
    status = models.CharField(max_length=10, choices=STATUSES, default="pending")
    r2_url = models.CharField(max_length=2000, blank=True)
    original_filename = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    created = models.DateTimeField(default=now)
    deadline = models.DateTimeField(help_text="Deliveries stop waiting for this transfer after it.")

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["status"], name="delivery_transfer_status")]  # /metrics: R2 outcomes

    def __str__(self) -> str:
        return f"{self.provider} {self.source_url[:60]} ({self.status})"


class StoredLink(models.Model):
    """History of links copied to R2 (replaces webhook_links.json); a known source is reused."""

    source_url = models.CharField(max_length=2000, help_text="Normalised source URL")
    r2_url = models.CharField(max_length=2000)
    provider = models.CharField(max_length=40)
    original_filename = models.CharField(max_length=500, blank=True)
    email = models.ForeignKey("mail.Email", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created = models.DateTimeField(default=now, db_index=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(fields=["source_url", "r2_url", "provider"], name="delivery_storedlink_unique")
        ]
        indexes = [models.Index(fields=["source_url", "-created"], name="delivery_storedlink_source")]

    def __str__(self) -> str:
        return f"{self.provider}: {self.source_url[:60]} → {self.r2_url[:60]}"
