"""/metrics (Prometheus text) and /api/metrics (a JSON summary), read from the database at scrape time.

The web workers, the job cluster's processes and the poller may each run in a container of
their own; the database is the one place that sees what all of them did. So nothing is
counted in process memory: every figure is a query over rows that exist anyway (emails,
deliveries, attempts, R2 transfers, leases, heartbeats), plus two small tallies the poller
keeps on its mailbox (connection errors, and a histogram of its cycle durations). Any
scrape, from any web worker, sees the same numbers, and a restart loses none of them.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from delivery.models import Delivery, Endpoint
from mail.models import CYCLE_BUCKETS, Mailbox, PollCycleBucket, PollerLease
from signalserver import aggregates, settled
from signalserver.accounts import bearer_token, staff_or_token
from signalserver.health import run_checks
from signalserver.models import ApiToken, WorkerHeartbeat

FAR_PAST_SECONDS = 10 * 365 * 86400  # the age reported for something that never happened


def _le(bound: float | None) -> str:
    return "+Inf" if bound is None else repr(float(bound))


class DatabaseCollector:
    """Yields every metric family from a fixed number of queries."""

    def __init__(self) -> None:
        self.now = timezone.now()
        self.mailboxes = {m.pk: m for m in Mailbox.objects.all()}
        self.endpoints = dict(Endpoint.objects.values_list("pk", "name"))
        self.all_attempts, self.all_latency = settled.attempts_and_latency(self.now)

    def collect(self) -> Iterator[Metric]:
        yield from self.emails()
        yield from self.deliveries()
        yield self.attempts()
        yield self.latency()
        yield from self.mailbox_metrics()
        yield from self.transfers()
        yield from self.cluster()

    def _mailbox(self, pk: int | None) -> str:
        if pk is None:  # mail pushed by the Gmail Apps Script has no mailbox
            return "gmail_push"
        box = self.mailboxes.get(pk)
        return box.name if box else str(pk)

    def _endpoint(self, pk: int) -> str:
        return self.endpoints.get(pk, str(pk))

    def emails(self) -> Iterator[Metric]:
        counts = aggregates.emails_by_mailbox_and_decision()
        current = GaugeMetricFamily(
            "signalserver_emails", "Emails recorded, by mailbox and current decision", labels=["mailbox", "decision"]
        )
        received = CounterMetricFamily(
            "signalserver_emails_received", "Emails recorded since the mailbox was added", labels=["mailbox"]
        )
        per_mailbox: dict[str, int] = {self._mailbox(pk): 0 for pk in self.mailboxes}
        for (mailbox_id, decision), n in sorted(counts.items(), key=str):
            name = self._mailbox(mailbox_id)
            current.add_metric([name, str(decision)], n)
            per_mailbox[name] = per_mailbox.get(name, 0) + n
        for name, n in sorted(per_mailbox.items()):
            received.add_metric([name], n)
        yield current
        yield received

    def deliveries(self) -> Iterator[Metric]:
        counts = aggregates.deliveries_by_endpoint_and_status()
        by_status = GaugeMetricFamily(
            "signalserver_deliveries", "Deliveries, by endpoint and current status", labels=["endpoint", "status"]
        )
        totals = {"held": 0, "failed": 0}
        for (endpoint_id, status), n in sorted(counts.items(), key=str):
            by_status.add_metric([self._endpoint(endpoint_id), str(status)], n)
            if status in totals:
                totals[str(status)] += n
        yield by_status
        queue = aggregates.queue(self.now)
        yield GaugeMetricFamily("signalserver_deliveries_due", "Deliveries due to be sent now", value=queue["due"])
        yield GaugeMetricFamily("signalserver_deliveries_held", "Deliveries held for sending later", totals["held"])
        yield GaugeMetricFamily("signalserver_deliveries_failed", "Deliveries failed for good", totals["failed"])
        release = queue["oldest_held_release"]
        overdue = (self.now - release).total_seconds() if isinstance(release, dt.datetime) else 0
        yield GaugeMetricFamily(
            "signalserver_deliveries_held_overdue_seconds",
            "How long past its release time the most overdue held delivery is still waiting (0: none)",
            value=max(overdue, 0),
        )

    def attempts(self) -> Metric:
        family = CounterMetricFamily(
            "signalserver_delivery_attempts", "Webhook attempts by endpoint and outcome", labels=["endpoint", "outcome"]
        )
        for (endpoint_id, outcome), n in sorted(self.all_attempts.items(), key=str):
            family.add_metric([self._endpoint(endpoint_id), str(outcome)], n)
        return family

    def latency(self) -> Metric:
        cumulative, total = self.all_latency
        bounds = [*map(_le, aggregates.LATENCY_BUCKETS), "+Inf"]
        family = HistogramMetricFamily(
            "signalserver_delivery_latency_seconds", "Time from an email's recording to its webhook's delivery"
        )
        family.add_metric([], list(zip(bounds, cumulative, strict=True)), sum_value=total)
        return family

    def mailbox_metrics(self) -> Iterator[Metric]:
        labels = ["mailbox"]
        age = GaugeMetricFamily(
            "signalserver_mailbox_last_good_cycle_age_seconds",
            "Seconds since the last successful poll cycle (since the mailbox was added, when none)",
            labels=labels,
        )
        active = GaugeMetricFamily(
            "signalserver_mailbox_active", "1 when the mailbox is enabled and inside its active hours", labels=labels
        )
        reconnects = CounterMetricFamily(
            "signalserver_imap_reconnects", "IMAP connection errors the poller reconnected after", labels=labels
        )
        holders = dict(
            PollerLease.objects.filter(expires_at__gte=self.now).exclude(holder="").values_list("name", "holder")
        )
        lease = GaugeMetricFamily(
            "signalserver_poller_lease_held", "1 when a poller holds the mailbox's lease", labels=labels
        )
        for box in self.mailboxes.values():
            last = box.last_good_cycle or box.created
            age.add_metric([box.name], (self.now - last).total_seconds())
            active.add_metric([box.name], int(box.enabled and box.is_active(self.now)))
            reconnects.add_metric([box.name], box.reconnects)
            lease.add_metric([box.name], int(box.lease_name in holders))
        yield from (age, active, reconnects, lease, self.cycles())

    def cycles(self) -> Metric:
        family = HistogramMetricFamily(
            "signalserver_poll_cycle_duration_seconds", "Duration of the poller's passes over mail", labels=["mailbox"]
        )
        rows: dict[int, dict[float | None, tuple[int, float]]] = {}
        for row in PollCycleBucket.objects.values_list("mailbox_id", "le", "count", "seconds_sum"):
            rows.setdefault(row[0], {})[row[1]] = (row[2], row[3])
        for pk, box in self.mailboxes.items():
            buckets = rows.get(pk, {})
            cumulative = [(_le(le), buckets.get(le, (0, 0.0))[0]) for le in CYCLE_BUCKETS]
            family.add_metric([box.name], cumulative, sum_value=buckets.get(None, (0, 0.0))[1])
        return family

    def transfers(self) -> Iterator[Metric]:
        counts = aggregates.transfers_by_status()
        done = CounterMetricFamily("signalserver_r2_transfers", "R2 transfers finished, by outcome", labels=["outcome"])
        for outcome in ("success", "failed"):
            done.add_metric([outcome], counts.get(outcome, 0))
        yield done
        running = counts.get("pending", 0) + counts.get("running", 0)
        yield GaugeMetricFamily("signalserver_r2_transfers_in_progress", "R2 transfers not finished yet", running)

    def cluster(self) -> Iterator[Metric]:
        beat = WorkerHeartbeat.latest()
        age = (self.now - beat.seen_at).total_seconds() if beat else FAR_PAST_SECONDS
        yield GaugeMetricFamily(
            "signalserver_qcluster_heartbeat_age_seconds", "Seconds since a job cluster last reported", value=age
        )
        ok, body = run_checks()
        health = GaugeMetricFamily("signalserver_health_ok", "1 when the /health check passes", labels=["check"])
        for name, result in body["checks"].items():
            health.add_metric([name], int(bool(result["ok"])))
        yield health
        yield GaugeMetricFamily("signalserver_healthy", "1 when /health answers 200", value=int(ok))


def exposition() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector())
    return bytes(generate_latest(registry))


def metrics_allowed(request: HttpRequest) -> bool:
    if not settings.METRICS_TOKEN:
        return True
    token = bearer_token(request)
    if token and hmac.compare_digest(token.encode(), settings.METRICS_TOKEN.encode()):
        return True
    return bool(token) and ApiToken.authenticate(token, "metrics") is not None


@never_cache
@require_http_methods(["GET", "HEAD"])
def metrics(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        response = HttpResponse("Send Authorization: Bearer <METRICS_TOKEN>\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


def _mailbox_summary(box: Mailbox, holders: dict[str, str], now: dt.datetime) -> dict[str, Any]:
    last = box.last_good_cycle
    return {
        "name": box.name,
        "enabled": box.enabled,
        "active_now": box.enabled and box.is_active(now),
        "last_good_cycle": last.isoformat() if last else None,
        "last_good_cycle_age_seconds": round((now - last).total_seconds(), 1) if last else None,
        "lease_holder": holders.get(box.lease_name) or None,
        "last_error": box.last_error or None,
        "last_error_at": box.last_error_at.isoformat() if box.last_error_at else None,
    }


def summary(now: dt.datetime) -> dict[str, Any]:
    counts = aggregates.counts_since(now - dt.timedelta(hours=24), now - dt.timedelta(hours=1))
    holders = dict(PollerLease.objects.filter(expires_at__gte=now).exclude(holder="").values_list("name", "holder"))
    totals = aggregates.count_by(Delivery.objects.all(), "status")
    queue = aggregates.queue(now)
    release = queue["oldest_held_release"]

    def status_total(status: str) -> int:
        return totals.get((status,), 0)

    return {
        "time_utc": now.astimezone(dt.UTC).isoformat(),
        "last_hour": {name: windows["recent"] for name, windows in counts.items()},
        "last_24_hours": {name: windows["wide"] for name, windows in counts.items()},
        "mailboxes": [_mailbox_summary(box, holders, now) for box in Mailbox.objects.all()],
        "queue": {
            "due": queue["due"],
            "pending": status_total("pending"),
            "held": status_total("held"),
            "failed": status_total("failed"),
            "oldest_held_release": release.isoformat() if isinstance(release, dt.datetime) else None,
        },
    }


@never_cache
@require_http_methods(["GET", "HEAD"])
@staff_or_token("metrics")
def api_metrics(request: HttpRequest) -> HttpResponse:
    """Counts for the last hour and day, each mailbox's poller, the delivery queue (`curl | jq`)."""
    return JsonResponse(summary(timezone.now()))
