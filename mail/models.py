from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import F, Q
from django.utils.timezone import now

from delivery.fields import EncryptedTextField

MODES = (("idle", "IMAP IDLE (push, when the server supports it)"), ("poll", "Poll at an interval"))
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WORKING_DAYS = "0,1,2,3,4"

DECISIONS = (
    ("accepted", "Accepted: handed to delivery"),
    ("delivered", "Delivered"),
    ("held", "Held until the sending window opens"),
    ("retrying", "Delivery retrying after a failed attempt"),
    ("failed", "Delivery failed"),
    ("skipped_reply", "Skipped: reply or forward"),
    ("skipped_sender", "Skipped: sender not allowed"),
    ("skipped_duplicate_group", "Skipped: subject group already handled"),
    ("skipped_outside_window", "Skipped: outside the sending window"),
    ("skipped_no_links", "Skipped: no delivery links"),
    ("skipped_no_endpoint", "Skipped: no endpoint receives it"),
    ("unparseable", "Unparseable"),
)
SOURCES = (("imap", "IMAP mailbox"), ("gmail_push", "Gmail push (Apps Script)"))
# Decisions of mail recognised as an order (handed to delivery, or kept from it by a rule);
# the rest (replies, mail without links, unparseable) is not an order.
ORDER_DECISIONS = (
    "accepted",
    "delivered",
    "held",
    "retrying",
    "failed",
    "skipped_duplicate_group",
    "skipped_outside_window",
    "skipped_no_endpoint",
)
# Decisions after which the message may be flagged on the server; mail from senders outside
# the allow-list and unparseable mail are always left as they are.
FLAGGABLE_DECISIONS = (*ORDER_DECISIONS, "skipped_reply", "skipped_no_links")
SEEN_POLICIES = (
    ("orders", "Orders only: replies and other mail stay unread for people"),
    ("all", "Every recorded email (except senders outside the allow-list)"),
    ("none", "Never"),
)
DETECTORS = (("recadrage", "Recadrage"), ("desabonnement_journee_tarifs", "Désabonnement / journée / tarifs"))


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"{value!r} is not a known time zone (for example Europe/Paris)") from None


def validate_weekdays(value: str) -> None:
    try:
        days = parse_weekdays(value)
    except ValueError:
        days = []
    if not days:
        raise ValidationError("Choose at least one day (0 = Monday … 6 = Sunday)")


def parse_weekdays(value: str) -> list[int]:
    days = sorted({int(d) for d in value.replace(" ", "").split(",") if d})
    if any(d < 0 or d > 6 for d in days):
        raise ValueError(value)
    return days


def hour_in_range(now: dt.time, start: dt.time, end: dt.time) -> bool:
    """Half-open [start, end); wraps midnight when start > end; start == end is never."""
    if start == end:
        return False
    if start < end:
        return start <= now < end
    return now >= start or now < end


class MailRules:
    """Which mail is taken in and in which time zone: shared by mailboxes and the Gmail push ingress."""

    allowed_senders: str
    timezone: str
    subject_group_dedup: bool
    subject_group_monthly: bool

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def sender_allowed(self, address: str) -> bool:
        allowed = self.allowed_sender_list()
        return not allowed or address.lower() in allowed

    def allowed_sender_list(self) -> list[str]:
        items = self.allowed_senders.replace(",", "\n").replace(";", "\n").split()
        return list(dict.fromkeys(s.strip().lower() for s in items if "@" in s))


class Mailbox(MailRules, models.Model):
    """An IMAP account to watch, and when to watch it."""

    name = models.SlugField(max_length=100, unique=True, help_text="Short name, used by `manage.py poll --mailbox`")
    host = models.CharField(max_length=255)
    port = models.PositiveIntegerField(default=993, validators=[MaxValueValidator(65535)])
    use_ssl = models.BooleanField("SSL/TLS", default=True)
    username = models.CharField(max_length=255)
    password = EncryptedTextField(blank=True, help_text="Stored encrypted; never shown back.")
    folder = models.CharField(max_length=255, default="INBOX")
    allowed_senders = models.TextField(
        blank=True, help_text="One address per line or comma-separated. Empty: every sender is accepted."
    )
    enabled = models.BooleanField(default=True)
    active_days = models.CharField(
        max_length=20, default=WORKING_DAYS, validators=[validate_weekdays], help_text="Days the mailbox is watched."
    )
    active_start = models.TimeField(default=dt.time(9, 0))
    active_end = models.TimeField(default=dt.time(23, 0), help_text="Exclusive; before the start wraps midnight.")
    timezone = models.CharField(max_length=64, default="Europe/Paris", validators=[validate_timezone])
    vacation_start = models.DateField(null=True, blank=True)
    vacation_end = models.DateField(null=True, blank=True)
    mode = models.CharField(max_length=10, choices=MODES, default="idle")
    poll_interval_seconds = models.PositiveIntegerField(default=30, validators=[MinValueValidator(1)])
    inactive_interval_seconds = models.PositiveIntegerField(default=600, validators=[MinValueValidator(1)])
    seen_policy = models.CharField(
        "mark as read (\\Seen)",
        max_length=10,
        choices=SEEN_POLICIES,
        default="orders",
        help_text="Which recorded emails get \\Seen on the server, once their row is saved.",
    )
    flag_keyword = models.CharField(
        max_length=64,
        blank=True,
        help_text="Optional IMAP keyword added to every recorded email (whatever is marked read), e.g. signalserver",
    )
    # Django's admin shows help texts as HTML: no angle brackets here.
    subject_group_dedup = models.BooleanField(
        default=True, help_text="Handle each “Lot 12”-style subject group once; later emails of the group are skipped."
    )
    subject_group_monthly = models.BooleanField(default=False, help_text="Groups are per calendar month.")

    # Poller state
    uidvalidity = models.BigIntegerField(null=True, blank=True, editable=False)
    last_uid = models.BigIntegerField(default=0, editable=False)
    last_good_cycle = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    reconnects = models.PositiveBigIntegerField(
        default=0, editable=False, help_text="Connection errors the poller recovered from by reconnecting"
    )
    last_test_result = models.TextField(blank=True, editable=False)
    last_test_at = models.DateTimeField(null=True, blank=True, editable=False)
    # "Check now": at most one pending per mailbox, and its result.
    check_requested_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_check_result = models.TextField(blank=True, editable=False)
    last_check_at = models.DateTimeField(null=True, blank=True, editable=False)
    created = models.DateTimeField(default=now, editable=False)

    class Meta:
        verbose_name_plural = "mailboxes"
        ordering = ["id"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if bool(self.vacation_start) != bool(self.vacation_end):
            raise ValidationError("Set both vacation dates, or neither.")
        if self.vacation_start and self.vacation_end and self.vacation_start > self.vacation_end:
            raise ValidationError("The vacation must end on or after its start.")

    def on_vacation(self, now: dt.datetime) -> bool:
        if not (self.vacation_start and self.vacation_end):
            return False
        return self.vacation_start <= now.astimezone(self.tz).date() <= self.vacation_end

    def is_active(self, now: dt.datetime) -> bool:
        local = now.astimezone(self.tz)
        if self.on_vacation(now) or local.weekday() not in parse_weekdays(self.active_days):
            return False
        return hour_in_range(local.time(), self.active_start, self.active_end)

    def next_active(self, now: dt.datetime) -> dt.datetime | None:
        """The next moment (to the minute) the schedule is active, within two weeks."""
        probe = now.replace(second=0, microsecond=0)
        for _ in range(14 * 24 * 4):
            if self.is_active(probe):
                return probe
            probe += dt.timedelta(minutes=15)
        return None

    @property
    def lease_name(self) -> str:
        return self.name

    def record_good_cycle(self, seconds: float | None = None) -> None:
        """A pass over new mail succeeded; `seconds`, when given, is how long it took (for /metrics)."""
        self.last_good_cycle = now()
        Mailbox.objects.filter(pk=self.pk).update(last_good_cycle=self.last_good_cycle)
        if seconds is not None:
            PollCycleBucket.observe(self.pk, seconds)

    def record_error(self, message: str) -> None:
        self.last_error, self.last_error_at = message[:2000], now()
        Mailbox.objects.filter(pk=self.pk).update(
            last_error=self.last_error, last_error_at=self.last_error_at, reconnects=F("reconnects") + 1
        )

    @property
    def current_error(self) -> str:
        """The last error, unless a good cycle came after it (then it is history, not the state)."""
        if not self.last_error or self.last_error_at is None:
            return ""
        if self.last_good_cycle is not None and self.last_good_cycle >= self.last_error_at:
            return ""
        return self.last_error

    def claim_check(self, stale_after: dt.timedelta) -> bool:
        """Mark a "check now" pending; False when one already is (younger than `stale_after`)."""
        moment = now()
        pending = Q(check_requested_at__isnull=True) | Q(check_requested_at__lt=moment - stale_after)
        claimed = Mailbox.objects.filter(pending, pk=self.pk).update(
            check_requested_at=moment, last_check_result="Queued…", last_check_at=moment
        )
        return claimed == 1

    def record_check(self, result: str, done: bool = True) -> None:
        """The result of a "check now"; `done=False` leaves it pending (a running poller will finish it)."""
        fields: dict[str, object] = {"last_check_result": result[:2000], "last_check_at": now()}
        if done:
            fields["check_requested_at"] = None
        Mailbox.objects.filter(pk=self.pk).update(**fields)

    def flags_for(self, decision: str) -> list[bytes]:
        """The IMAP flags to add to a recorded message with this decision."""
        if decision not in FLAGGABLE_DECISIONS:
            return []
        seen = self.seen_policy == "all" or (self.seen_policy == "orders" and decision in ORDER_DECISIONS)
        return ([b"\\Seen"] if seen else []) + ([self.flag_keyword.encode()] if self.flag_keyword else [])

    def save_position(self, uidvalidity: int, last_uid: int) -> None:
        self.uidvalidity, self.last_uid = uidvalidity, last_uid
        Mailbox.objects.filter(pk=self.pk).update(uidvalidity=uidvalidity, last_uid=last_uid)


class Email(models.Model):
    """One message and what was decided about it. Unique per mailbox (or among pushed mail) and identity."""

    # Indexed by the unique (mailbox, identity) constraint, which starts with it. Empty for pushed mail.
    mailbox = models.ForeignKey(
        Mailbox, on_delete=models.CASCADE, related_name="emails", db_index=False, null=True, blank=True
    )
    source = models.CharField(max_length=20, choices=SOURCES, default="imap")
    identity = models.CharField(
        max_length=255, help_text="Message-ID, else md5(Message-ID|Subject|Date); pushed: md5(Subject|sender|Date)"
    )
    email_id = models.CharField(max_length=64, help_text="md5(Message-ID|Subject|Date), as the original app sent it")
    uid = models.BigIntegerField(null=True, blank=True)
    uidvalidity = models.BigIntegerField(null=True, blank=True)
    message_id = models.CharField(max_length=998, blank=True)
    subject = models.TextField(blank=True)
    sender = models.CharField(max_length=320, blank=True)
    sender_raw = models.TextField(blank=True)
    date_header = models.CharField(max_length=255, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    size = models.PositiveIntegerField(default=0)
    received_at = models.DateTimeField(default=now)
    detector = models.CharField(max_length=40, choices=DETECTORS, blank=True)
    delivery_time = models.CharField(max_length=40, blank=True)
    urgent = models.BooleanField(default=False)
    links = models.JSONField(default=list, blank=True)
    subject_group = models.CharField(max_length=120, blank=True)
    text = models.TextField(blank=True, help_text="Plain text + HTML used for detection (HTML capped)")
    decision = models.CharField(max_length=40, choices=DECISIONS)
    reason = models.TextField(blank=True)
    held_until = models.DateTimeField(null=True, blank=True)
    seen_flagged = models.BooleanField(default=False)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "identity"], name="mail_email_unique_identity"),
            # Pushed mail has no mailbox: its identity is unique among pushed mail, so a re-push
            # or two simultaneous pushes of one message record it once.
            models.UniqueConstraint(
                fields=["identity"], condition=models.Q(mailbox__isnull=True), name="mail_email_unique_pushed"
            ),
        ]
        indexes = [
            # Dashboard and admin lists: newest first, optionally by decision.
            models.Index(fields=["-received_at", "-id"], name="mail_email_recent"),
            models.Index(fields=["decision", "-received_at", "-id"], name="mail_email_decision_recent"),
            # Subject-group dedup looks up accepted emails of one group.
            models.Index(fields=["mailbox", "subject_group"], name="mail_email_group"),
            # /metrics counts emails by mailbox and decision from this index alone.
            models.Index(fields=["mailbox", "decision"], name="mail_email_mailbox_decision"),
        ]

    def __str__(self) -> str:
        return self.subject or f"(no subject) #{self.pk}"

    def set_decision(self, decision: str, reason: str) -> None:
        self.decision, self.reason = decision, reason


class RawMessage(models.Model):
    """The bytes of a message as fetched, in chunks, kept for a retention period (replay, debugging).

    Chunks keep memory bounded: a 25 MB message is never copied whole into one SQL parameter.
    """

    CHUNK_BYTES = 1024 * 1024

    # Indexed by the unique (email, seq) constraint.
    email = models.ForeignKey(Email, on_delete=models.CASCADE, related_name="raw_chunks", db_index=False)
    seq = models.PositiveIntegerField()
    data = models.BinaryField()
    stored_at = models.DateTimeField(default=now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["email", "seq"], name="mail_raw_chunk_unique")]

    def __str__(self) -> str:
        return f"Raw message of email #{self.email_id}, part {self.seq}"

    @classmethod
    def chunks(cls, email: Email, raw: bytes | bytearray) -> Iterator[RawMessage]:
        view = memoryview(raw)
        for seq, start in enumerate(range(0, max(len(raw), 1), cls.CHUNK_BYTES)):
            yield cls(email=email, seq=seq, data=bytes(view[start : start + cls.CHUNK_BYTES]))

    @classmethod
    def store(cls, email: Email, raw: bytes | bytearray) -> None:
        for chunk in cls.chunks(email, raw):
            chunk.save()

    @classmethod
    def read(cls, email_id: int) -> bytes | None:
        parts = cls.objects.filter(email_id=email_id).order_by("seq").values_list("data", flat=True)
        return b"".join(bytes(p) for p in parts) if parts else None


class PollerLease(models.Model):
    """The database lease that keeps one poller per mailbox across every process and container.

    Its holder reads the row about once a second, so it is also how others reach the running
    session: a "check now" asks it to fetch at once, and a successor session says it is
    connected and ready to take over.
    """

    name = models.CharField(max_length=200, unique=True)
    holder = models.CharField(max_length=255, blank=True)
    expires_at = models.DateTimeField(default=now)
    wake_requested_at = models.DateTimeField(null=True, blank=True)
    successor = models.CharField(max_length=255, blank=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.holder or 'free'}"


class GmailIngress(MailRules, models.Model):
    """How mail pushed by the Google Apps Script (POST /api/ingress/gmail) is taken in: one row, in the admin."""

    enabled = models.BooleanField(
        default=True,
        help_text="Off: pushes are refused with 409 “Gmail ingress disabled”; the Apps Script keeps them and retries.",
    )
    allowed_senders = models.TextField(
        blank=True, help_text="One address per line or comma-separated. Empty: every sender is accepted."
    )
    subject_group_dedup = models.BooleanField(
        default=True, help_text="Handle each “Lot <n>” subject group once; later emails of the group are skipped."
    )
    subject_group_monthly = models.BooleanField(default=False, help_text="Groups are per calendar month.")
    timezone = models.CharField(
        max_length=64,
        default="Europe/Paris",
        validators=[validate_timezone],
        help_text="For URGENCE delivery times and monthly groups.",
    )

    class Meta:
        verbose_name = "Gmail push ingress"
        verbose_name_plural = "Gmail push ingress"

    def __str__(self) -> str:
        return "Gmail push ingress"

    @classmethod
    def load(cls) -> GmailIngress:
        """The row, created on first use from GMAIL_SENDER_ALLOWLIST and POLLING_TIMEZONE."""
        row = cls.objects.order_by("pk").first()
        if row is None:
            row = cls.objects.create(**settings.LEGACY_GMAIL_INGRESS)
        return row


# Upper bounds (seconds) of the poll cycle histogram; None is +Inf.
CYCLE_BUCKETS: tuple[float | None, ...] = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, None)


class PollCycleBucket(models.Model):
    """One cumulative bucket of a mailbox's poll cycle durations: how many cycles took at most `le`.

    The poller is the only writer (it holds the mailbox's lease); one UPDATE counts a cycle in
    every bucket it falls under, so /metrics reads a Prometheus histogram as it is stored.
    """

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="cycle_buckets", db_index=False)
    le = models.FloatField(null=True, help_text="Upper bound in seconds; empty is +Inf")
    count = models.PositiveBigIntegerField(default=0)
    seconds_sum = models.FloatField(default=0, help_text="Sum of the durations counted here")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["mailbox", "le"], name="mail_cycle_bucket_unique"),
            models.UniqueConstraint(fields=["mailbox"], condition=Q(le__isnull=True), name="mail_cycle_bucket_one_inf"),
        ]

    def __str__(self) -> str:
        return f"{self.mailbox_id} le={self.le}: {self.count}"

    @classmethod
    def observe(cls, mailbox_id: int, seconds: float) -> None:
        covering = cls.objects.filter(Q(le__gte=seconds) | Q(le__isnull=True), mailbox_id=mailbox_id)
        counted = {"count": F("count") + 1, "seconds_sum": F("seconds_sum") + seconds}
        if covering.update(**counted) == 0:
            buckets = [PollCycleBucket(mailbox_id=mailbox_id, le=le) for le in CYCLE_BUCKETS]
            PollCycleBucket.objects.bulk_create(buckets, ignore_conflicts=True)
            covering.update(**counted)
