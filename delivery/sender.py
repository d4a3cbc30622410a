"""Sending deliveries: claim one atomically, check the schedule, POST it signed, record the attempt."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
import math
import os
import random
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from delivery import http, payload, r2, signing
from delivery.models import Attempt, Delivery, Endpoint, SendingSchedule
from delivery.schedule import blocked, in_window, next_opening
from signalserver import inserts

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = {408, 425, 429}
OPEN_STATUSES = ("pending", "held", "sending")
# A batch goes one request after the other while each is answered this fast.
QUICK_ANSWER_SECONDS = 0.005
# A slow batch's answers are recorded at least this often.
RECORD_EVERY_SECONDS = 0.25
RESULT_FIELDS = [
    "attempt_count",
    "claimed_until",
    "status",
    "delivered_at",
    "last_error",
    "reason",
    "next_attempt_at",
    "payload",
]


TEST_PAYLOAD = {
    "microsoft_graph_email_id": "test-webhook",
    "subject": "Média Solution - Missions Recadrage - Lot 0 (test)",
    "receivedDateTime": "",
    "sender_address": "signalserver test <test@signalserver.invalid>",
    "sender_email": "test@signalserver.invalid",
    "bodyPreview": "Test webhook from signalserver",
    "email_content": "Test webhook from signalserver",
    "detector": "recadrage",
    "delivery_time": "09h00",
    "webhooks_time_start": "maintenant",
    "delivery_links": [{"provider": "dropbox", "raw_url": "https://www.dropbox.com/scl/fo/test/test?rlkey=test&dl=0"}],
}


@dataclass
class Verdict:
    delivered: bool
    retry: bool
    message: str


def _due(now: dt.datetime) -> Q:
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    return Q(status__in=OPEN_STATUSES, next_attempt_at__lte=now) & free


def claim_seconds(timeouts: list[int]) -> float:
    """How long a claim lasts: sending it all (the first request alone, then the rest
    `DELIVERY_CONCURRENCY` at a time) may take this long."""
    rounds = 1 + math.ceil((len(timeouts) - 1) / settings.DELIVERY_CONCURRENCY)
    return rounds * max(timeouts, default=0) + settings.DELIVERY_CLAIM_MARGIN_SECONDS


def claim_batch(now: dt.datetime | None = None, limit: int | None = None) -> list[Delivery]:
    """Take up to `limit` (DELIVERY_BATCH_SIZE) due deliveries for this worker alone.

    Mail arriving now goes before a backlog (`Delivery.backlog`), then the oldest first.
    The rows are stamped with a fresh token in one short transaction. On PostgreSQL the
    due rows are locked with SKIP LOCKED, so workers claiming at the same moment take
    different rows instead of all reaching for the oldest (and all but one finding
    nothing); SQLite serialises the transactions. The claim lasts as long as sending them
    all may take; a delivery left behind by a killed worker becomes due again when it ends.
    """
    now = now or timezone.now()
    due = Delivery.objects.filter(_due(now)).order_by("backlog", "next_attempt_at", "pk")
    token = secrets.token_hex(8)
    with transaction.atomic():
        rows = list(
            due.select_for_update(skip_locked=True, of=("self",)).values_list("pk", "endpoint__timeout_seconds")[
                : limit or settings.DELIVERY_BATCH_SIZE
            ]
        )
        if not rows:
            return []
        until = now + dt.timedelta(seconds=claim_seconds([t for _, t in rows]))
        pks = [pk for pk, _ in rows]
        Delivery.objects.filter(pk__in=pks).update(claimed_until=until, claim=token)
    # By key (the claim token has no index: on PostgreSQL a scan of the whole table per claim).
    claimed = list(Delivery.objects.filter(pk__in=pks, claim=token, claimed_until=until).select_related("email"))
    _share_endpoints(claimed)
    return sorted(claimed, key=lambda d: (d.backlog, d.next_attempt_at, d.pk))


def claim_next(now: dt.datetime | None = None) -> Delivery | None:
    batch = claim_batch(now, limit=1)
    return batch[0] if batch else None


def _share_endpoints(deliveries: list[Delivery]) -> None:
    """Load each endpoint once for the batch (its secret is decrypted once, not per delivery)."""
    endpoints = Endpoint.objects.in_bulk({d.endpoint_id for d in deliveries})
    for delivery in deliveries:
        delivery.endpoint = endpoints[delivery.endpoint_id]


def judge(endpoint: Endpoint, response: http.Response) -> Verdict:
    code = response.status_code
    snippet = " ".join(response.body[:200].decode("utf-8", "replace").split())
    if 200 <= code < 300 and endpoint.success_rule == "2xx":
        return Verdict(True, False, f"HTTP {code}")
    if 200 <= code < 300 or (code == 422 and endpoint.success_rule == "json_success"):
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("success") and 200 <= code < 300:
            return Verdict(True, False, f"HTTP {code}, success: true")
        message = body.get("message", "Unknown error") if isinstance(body, dict) else "no JSON success: true"
        # The original receiver answers failures this way; they may pass on a later try.
        return Verdict(False, True, f"HTTP {code}: {str(message)[:200]}")
    retry = code in RETRYABLE_STATUS or code >= 500
    return Verdict(False, retry, f"HTTP {code}: {snippet}" if snippet else f"HTTP {code}")


def retry_after_seconds(response: http.Response | None) -> float:
    value = (response.headers.get("Retry-After") or response.headers.get("retry-after")) if response else None
    if not value:
        return 0
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0
    return max(0.0, (when - timezone.now()).total_seconds())


def next_delay(attempt_count: int, response: http.Response | None) -> float | None:
    """Seconds until the next try after `attempt_count` attempts, or None when they are used up."""
    delays = settings.DELIVERY_RETRY_DELAYS
    if attempt_count > len(delays):
        return None
    base = delays[attempt_count - 1] * random.uniform(0.9, 1.1)  # jitter: receivers aren't hit in waves
    return max(base, min(retry_after_seconds(response), 86400))


def _hold(delivery: Delivery, release: dt.datetime | None, reason: str) -> None:
    delivery.status, delivery.next_attempt_at, delivery.reason, delivery.claimed_until = "held", release, reason, None
    delivery.save(update_fields=["status", "next_attempt_at", "reason", "claimed_until"])


def _rate_limited_until(endpoint: Endpoint, now: dt.datetime) -> dt.datetime | None:
    if not endpoint.rate_limit_per_hour:
        return None
    hour_ago = now - dt.timedelta(hours=1)
    recent = Attempt.objects.filter(delivery__endpoint=endpoint, started__gte=hour_ago).order_by("-started")
    times = list(recent.values_list("started", flat=True)[: endpoint.rate_limit_per_hour])
    if len(times) < endpoint.rate_limit_per_hour:
        return None
    return times[-1] + dt.timedelta(hours=1)


def process(delivery: Delivery, now: dt.datetime | None = None, schedule: SendingSchedule | None = None) -> str:
    """Send a claimed delivery unless the schedule or the rate limit says wait. Returns its status."""
    now = now or timezone.now()
    if prepare(delivery, now, schedule or SendingSchedule.load()):
        return send(delivery, now)
    return delivery.status


def prepare(delivery: Delivery, now: dt.datetime, schedule: SendingSchedule) -> bool:
    """True when the delivery may go now (its payload built); otherwise it is saved waiting."""
    reason = blocked(schedule, now)
    if reason:
        _hold(delivery, next_opening(schedule, now), reason + " Held until sending is allowed.")
        return False
    if delivery.wait_for_window and not in_window(schedule, now):
        _hold(delivery, next_opening(schedule, now), "Waiting for the sending window to open.")
        return False
    limited = _rate_limited_until(delivery.endpoint, now)
    if limited:
        _hold(delivery, limited, f"Hourly rate limit of {delivery.endpoint.rate_limit_per_hour} reached.")
        return False
    if not delivery.payload and settings.R2_FETCH_ENABLED and _wait_for_transfers(delivery, now):
        return False
    if not delivery.payload:
        delivery.payload = json.dumps(payload.build(delivery, schedule, now), ensure_ascii=False)
    return True


def deliver(batch: list[Delivery], schedule: SendingSchedule, now: dt.datetime | None = None) -> None:
    """Send a claimed batch over keep-alive connections; write the attempts and the deliveries'
    new states in one transaction at its end (and every RECORD_EVERY_SECONDS while it is slow,
    so a worker killed mid-batch sends again only what was answered just before), then the
    emails' decisions.

    Deliveries to a rate-limited endpoint go one by one, each attempt recorded before the
    limit is checked for the next.
    """
    now = now or timezone.now()
    for delivery in batch:
        if delivery.endpoint.rate_limit_per_hour:
            process(delivery, now, schedule)
    ready = [d for d in batch if not d.endpoint.rate_limit_per_hour and prepare(d, now, schedule)]
    unrecorded: list[Sent] = []
    recorded_at = time.monotonic()
    for sent in _post_all(ready):
        unrecorded.append(sent)
        if time.monotonic() - recorded_at >= RECORD_EVERY_SECONDS:
            with transaction.atomic():
                _record_attempts(unrecorded)
            unrecorded, recorded_at = [], time.monotonic()
    with transaction.atomic():
        _record_attempts(unrecorded)
        sync_emails(batch)


def _post_all(deliveries: list[Delivery]) -> Iterator[Sent]:
    """POST each delivery; one after the other while the receiver answers at once, the rest
    `DELIVERY_CONCURRENCY` at a time as soon as one answer is slow.

    Threads only pay off while requests wait on the network: against a receiver that
    answers within milliseconds they cost more CPU than they save.
    """
    for done, delivery in enumerate(deliveries, start=1):
        started = time.monotonic()
        yield _post(delivery)
        if time.monotonic() - started > QUICK_ANSWER_SECONDS and settings.DELIVERY_CONCURRENCY > 1:
            yield from _senders().map(_post, deliveries[done:])
            return


_pool: tuple[tuple[int, int], ThreadPoolExecutor] | None = None


def _senders() -> ThreadPoolExecutor:
    """This process's sending threads, started once: starting them for every batch cost more
    than the batch's requests. A forked worker starts its own."""
    global _pool
    key = (os.getpid(), settings.DELIVERY_CONCURRENCY)
    if _pool is None or _pool[0] != key:
        if _pool is not None and _pool[0][0] == key[0]:
            _pool[1].shutdown(wait=False)
        _pool = (key, ThreadPoolExecutor(settings.DELIVERY_CONCURRENCY, thread_name_prefix="sender"))
    return _pool[1]


def _wait_for_transfers(delivery: Delivery, now: dt.datetime) -> bool:
    """Start the email's R2 transfers (once); True while the delivery must wait for them."""
    for transfer in r2.prepare(delivery.email):
        async_task("delivery.tasks.offload_link", transfer.pk, task_name=f"R2 {transfer.provider}")
    until = r2.waiting_until(delivery.email_id, now)
    if until is None:
        return False
    delivery.status, delivery.next_attempt_at, delivery.claimed_until = "pending", until, None
    delivery.reason = "Waiting for the R2 transfers of its links."
    delivery.save(update_fields=["status", "next_attempt_at", "claimed_until", "reason"])
    return True


def send(delivery: Delivery, now: dt.datetime | None = None) -> str:
    sent = _post(delivery, now)
    with transaction.atomic():
        _record_attempts([sent])
    return delivery.status


@dataclass
class Sent:
    """A request's outcome, to be recorded."""

    delivery: Delivery
    verdict: Verdict
    response: http.Response | None
    at: dt.datetime  # when the request started


def _post(delivery: Delivery, at: dt.datetime | None = None) -> Sent:
    """POST the signed payload (no database access: this runs on the batch's threads)."""
    endpoint = delivery.endpoint
    body = delivery.payload.encode()
    at = at or timezone.now()
    headers = signing.headers(str(endpoint.secret), delivery.webhook_id, int(time.time()), body)
    try:
        response = http.post(endpoint.url, body, headers, endpoint.timeout_seconds)
    except http.HttpError as e:
        return Sent(delivery, Verdict(False, not e.permanent, e.message), None, at)
    return Sent(delivery, judge(endpoint, response), response, at)


def _record_attempts(results: list[Sent]) -> None:
    """Write the Attempt rows and the deliveries' new states (the claim showed them in flight);
    the caller holds the transaction."""
    for sent in results:
        _after_attempt(sent.delivery, sent.verdict, sent.response, sent.at)
    if results:
        inserts.insert([_attempt(sent) for sent in results])
        _save_results([sent.delivery for sent in results])


def _save_results(deliveries: list[Delivery]) -> None:
    """UPDATE the deliveries' result columns: on PostgreSQL in one statement for the batch
    (one UPDATE per row cost the sender more CPU, and the server more time, than any other
    statement of a backlog), on SQLite with one prepared statement run for every row.

    Django's bulk_update builds a CASE expression per row and field: for a batch that cost
    more CPU than sending it.
    """
    fields = [field for field in Delivery._meta.concrete_fields if field.name in RESULT_FIELDS]
    rows = [
        [field.get_db_prep_save(getattr(d, field.attname), connection) for field in fields] + [d.pk] for d in deliveries
    ]
    # Only the model's own table and column names are put into the SQL; values are parameters.
    quote, table = connection.ops.quote_name, connection.ops.quote_name(Delivery._meta.db_table)
    if connection.vendor == "postgresql":
        columns = [quote(str(field.column)) for field in fields]
        # Cast to the type without its length: varchar(20) would cut a longer value where the
        # column refuses it.
        types = [str(field.cast_db_type(connection)).split("(")[0] for field in fields] + ["bigint"]
        values = inserts.parameter_rows(len(rows), types)
        assignments = ", ".join(f"{c} = v.{c}" for c in columns)
        names = ", ".join([*columns, quote("id")])
        sql = f"UPDATE {table} SET {assignments} FROM (VALUES {values}) AS v ({names}) WHERE {table}.{quote('id')} = v.{quote('id')}"  # noqa: E501, S608  # nosec B608
        with inserts.cursor() as db:
            db.execute(sql, [value for row in rows for value in row])
        return
    assignments = ", ".join(f"{quote(str(field.column))} = %s" for field in fields)
    sql = f"UPDATE {table} SET {assignments} WHERE {quote('id')} = %s"  # noqa: S608  # nosec B608
    with connection.cursor() as db:
        db.executemany(sql, rows)


def _attempt(sent: Sent) -> Attempt:
    delivery, verdict, response = sent.delivery, sent.verdict, sent.response
    return Attempt(
        delivery=delivery,
        started=sent.at,
        outcome="delivered" if verdict.delivered else "failed",
        status_code=response.status_code if response else None,
        duration_ms=response.duration_ms if response else None,
        response_snippet=response.body[:500].decode("utf-8", "replace") if response else "",
        error="" if verdict.delivered else verdict.message,
    )


def _after_attempt(delivery: Delivery, verdict: Verdict, response: http.Response | None, now: dt.datetime) -> None:
    delivery.attempt_count += 1
    delivery.claimed_until = None
    delay = next_delay(delivery.attempt_count, response) if verdict.retry else None
    if verdict.delivered:
        delivery.status, delivery.delivered_at, delivery.last_error = "delivered", now, ""
        delivery.reason = f"Delivered on attempt {delivery.attempt_count}."
        logger.info("CUSTOM_WEBHOOK: delivered %s to %s", delivery.webhook_id, delivery.endpoint)
    elif delay is None:
        delivery.status, delivery.last_error = "failed", verdict.message
        delivery.reason = f"Failed after {delivery.attempt_count} attempt(s): {verdict.message}"
        logger.warning("CUSTOM_WEBHOOK: failed %s to %s: %s", delivery.webhook_id, delivery.endpoint, verdict.message)
    else:
        delivery.status, delivery.last_error = "pending", verdict.message
        delivery.next_attempt_at = now + dt.timedelta(seconds=delay)
        delivery.reason = f"Attempt {delivery.attempt_count} failed ({verdict.message}); retrying in {delay:.0f} s."
        logger.info("CUSTOM_WEBHOOK: retrying %s in %.0f s: %s", delivery.webhook_id, delay, verdict.message)


def sync_emails(deliveries: list[Delivery]) -> None:
    """Reflect a batch's outcome on the emails' decisions (one query for all their statuses)."""
    email_model = Delivery._meta.get_field("email").related_model
    statuses: dict[int, set[str]] = {}
    rows = Delivery.objects.filter(email_id__in={d.email_id for d in deliveries}).values_list("email_id", "status")
    for email_id, status in rows:
        statuses.setdefault(email_id, set()).add(status)
    delivered = [email_id for email_id, found in statuses.items() if found == {"delivered"}]
    if delivered:
        email_model._default_manager.filter(pk__in=delivered).update(
            decision="delivered", reason="Delivered to every endpoint."
        )
    for delivery in deliveries:
        found = statuses.get(delivery.email_id, {"delivered"})
        if found != {"delivered"}:
            _sync_email(delivery, found)


def _sync_email(delivery: Delivery, statuses: set[str]) -> None:
    """Reflect the statuses of an email's deliveries on its decision."""
    email = delivery.email
    if "failed" in statuses:
        email.decision, email.reason = "failed", delivery.reason if delivery.status == "failed" else email.reason
    elif "held" in statuses:
        email.decision, email.held_until = "held", delivery.next_attempt_at
        email.reason = delivery.reason
    elif delivery.retrying:
        email.decision, email.reason = "retrying", f"To {delivery.endpoint}: {delivery.reason}"
    else:
        return
    email.save(update_fields=["decision", "reason", "held_until"])


def resend(deliveries: list[Delivery]) -> int:
    """Queue deliveries again from a fresh attempt count (admin and dashboard "resend")."""
    pks = [d.pk for d in deliveries]
    return Delivery.objects.filter(pk__in=pks).update(
        status="pending", next_attempt_at=timezone.now(), attempt_count=0, claimed_until=None
    )


def send_now(deliveries: list[Delivery]) -> int:
    """Make retrying or held deliveries due at once, keeping their attempt count (dashboard "send now")."""
    pks = [d.pk for d in deliveries]
    waiting = Delivery.objects.filter(pk__in=pks, status__in=("pending", "held"))
    return waiting.update(next_attempt_at=timezone.now(), claimed_until=None)


def test_request(endpoint: Endpoint) -> tuple[bytes, dict[str, str]]:
    """The body and signed headers of a test webhook (id `msg_test_<time>`, never a real delivery's)."""
    body = json.dumps(TEST_PAYLOAD, ensure_ascii=False).encode()
    stamp = int(time.time())
    return body, signing.headers(str(endpoint.secret), f"msg_test_{stamp}", stamp, body)


def send_test(endpoint: Endpoint) -> str:
    """Send a signed test webhook; a one-line result, also recorded on the endpoint."""
    body, headers = test_request(endpoint)
    try:
        response = http.post(endpoint.url, body, headers, endpoint.timeout_seconds)
        verdict = judge(endpoint, response)
        result = f"{'OK' if verdict.delivered else 'Refused'}: {verdict.message} in {response.duration_ms} ms"
    except http.HttpError as e:
        result = f"Not sent: {e.message}"
    Endpoint.objects.filter(pk=endpoint.pk).update(last_test_result=result, last_test_at=timezone.now())
    logger.info("CUSTOM_WEBHOOK: test webhook to %s: %s", endpoint, result)
    return result
