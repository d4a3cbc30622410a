"""The dashboard's charts over the last 24 hours, drawn as server-side SVG (no script, no CDN).

Four aggregate queries, whatever the size of the history: emails per hour by decision,
deliveries per hour by status, time to delivery per hour (p50/p95 from a histogram counted
in SQL), and each endpoint's share of successful attempts.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.core.cache import cache
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django_redis.exceptions import ConnectionInterrupted

from delivery.models import Delivery, Endpoint
from mail.models import Email
from signalserver import aggregates

logger = logging.getLogger(__name__)

HOURS = 24
WIDTH, HEIGHT = 480, 150  # plot area, in SVG units
EMAIL_DECISIONS = (
    "delivered",
    "accepted",
    "held",
    "failed",
    "skipped_reply",
    "skipped_sender",
    "skipped_duplicate_group",
    "skipped_outside_window",
    "skipped_no_links",
    "skipped_no_endpoint",
    "unparseable",
)
DELIVERY_STATUSES = ("delivered", "pending", "sending", "held", "failed")
# Log scale of the time-to-delivery chart: 0.1 s at the bottom, 1 day at the top.
LATENCY_TICKS = (
    (0.1, "0.1 s"),
    (1, "1 s"),
    (10, "10 s"),
    (60, "1 min"),
    (600, "10 min"),
    (3600, "1 h"),
    (86400, "1 d"),
)


@dataclass
class Rect:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass
class Tick:
    position: float
    label: str


def _n(value: float) -> str:
    return f"{value:.1f}"


def bars_svg(bars: Sequence[Rect]) -> SafeString:
    # Markup built here, not in the template: a chart has hundreds of coordinates to format.
    return format_html_join(
        "",
        '<rect class="bar {}" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>',
        ((b.css, _n(b.x), _n(b.y), _n(b.width), _n(b.height), b.title) for b in bars),
    )


def dots_svg(dots: Sequence[Rect]) -> SafeString:
    return format_html_join(
        "",
        '<circle class="dot {}" cx="{}" cy="{}" r="3"><title>{}</title></circle>',
        ((d.css, _n(d.x), _n(d.y), d.title) for d in dots),
    )


def axes_svg(x_ticks: Sequence[Tick], y_ticks: Sequence[Tick]) -> SafeString:
    rows = format_html_join(
        "",
        '<line class="grid" x1="0" x2="{}" y1="{}" y2="{}"/>'
        '<text class="axis" x="-6" y="{}" text-anchor="end" dominant-baseline="middle">{}</text>',
        ((WIDTH, _n(t.position), _n(t.position), _n(t.position), t.label) for t in y_ticks),
    )
    columns = format_html_join(
        "", '<text class="axis" x="{}" y="{}">{}</text>', ((_n(t.position), HEIGHT + 18, t.label) for t in x_ticks)
    )
    return format_html("{}{}", rows, columns)


@dataclass
class StackedChart:
    bars: list[Rect]
    legend: list[tuple[str, int]]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    total: int

    @property
    def svg(self) -> SafeString:
        return format_html("{}{}", axes_svg(self.x_ticks, self.y_ticks), bars_svg(self.bars))


@dataclass
class LatencyChart:
    p50_line: str
    p95_line: str
    points: list[Rect]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    p50: float | None
    p95: float | None
    delivered: int

    @property
    def svg(self) -> SafeString:
        lines = format_html_join(
            "",
            '<polyline class="line {}" points="{}"/>',
            ((css, points) for css, points in (("p95", self.p95_line), ("p50", self.p50_line)) if points),
        )
        return format_html("{}{}{}", axes_svg(self.x_ticks, self.y_ticks), lines, dots_svg(self.points))

    @property
    def p50_text(self) -> str:
        return format_seconds(self.p50)

    @property
    def p95_text(self) -> str:
        return format_seconds(self.p95)


@dataclass
class Rate:
    endpoint: str
    delivered: int
    attempts: int
    percent: float
    width: float


@dataclass
class Charts:
    start: dt.datetime
    emails: StackedChart
    deliveries: StackedChart
    latency: LatencyChart
    rates: list[Rate] = field(default_factory=list)

    @property
    def stacked_panels(self) -> list[tuple[StackedChart, str, str]]:
        return [(self.emails, "emails", "Emails per hour"), (self.deliveries, "deliveries", "Deliveries per hour")]


def window(now: dt.datetime) -> tuple[dt.datetime, int]:
    """The start of the 24 one-hour columns (the current hour is the last one), and its epoch hour."""
    first = aggregates.epoch_hour(now) - HOURS + 1
    return dt.datetime.fromtimestamp(first * 3600, dt.UTC), first


def hour_ticks(first_hour: int) -> list[Tick]:
    ticks = []
    for column in range(HOURS):
        local = timezone.localtime(dt.datetime.fromtimestamp((first_hour + column) * 3600, dt.UTC))
        if local.hour % 6 == 0:
            ticks.append(Tick(column * WIDTH / HOURS, local.strftime("%H:%M")))
    return ticks


def nice_top(value: int) -> int:
    """The smallest of 1, 2, 5 times 10^n at or above `value`, for the y axis."""
    if value <= 1:
        return 1
    magnitude = int(10 ** math.floor(math.log10(value)))
    return next(step * magnitude for step in (1, 2, 5, 10) if step * magnitude >= value)


def stacked(
    counts: dict[tuple[int, str], int], first_hour: int, order: Sequence[str], nouns: tuple[str, str]
) -> StackedChart:
    per_hour = [sum(counts.get((first_hour + c, key), 0) for key in order) for c in range(HOURS)]
    others = sum(n for (hour, key), n in counts.items() if key not in order and hour >= first_hour)
    top = nice_top(max(per_hour, default=0))
    column = WIDTH / HOURS
    bars = []
    for c in range(HOURS):
        base = float(HEIGHT)
        for key in order:
            n = counts.get((first_hour + c, key), 0)
            if not n:
                continue
            height = HEIGHT * n / top
            base -= height
            local = timezone.localtime(dt.datetime.fromtimestamp((first_hour + c) * 3600, dt.UTC))
            title = f"{local:%H:00}: {n} {nouns[n != 1]} {key}"
            bars.append(Rect(c * column + 1, base, column - 2, height, key, title))
    legend = [(key, sum(counts.get((first_hour + c, key), 0) for c in range(HOURS))) for key in order]
    y_ticks = [Tick(HEIGHT - HEIGHT * f, f"{top * f:g}") for f in (0, 0.5, 1)]
    total = sum(per_hour) + others
    return StackedChart(bars, [(k, n) for k, n in legend if n], hour_ticks(first_hour), y_ticks, total)


def log_y(seconds: float) -> float:
    low, high = math.log10(LATENCY_TICKS[0][0]), math.log10(LATENCY_TICKS[-1][0])
    clamped = min(max(seconds, LATENCY_TICKS[0][0]), LATENCY_TICKS[-1][0])
    return HEIGHT - HEIGHT * (math.log10(clamped) - low) / (high - low)


def latency_chart(first_hour: int, since: dt.datetime) -> LatencyChart:
    by_hour = aggregates.latency_histograms_by_hour(since)
    column = WIDTH / HOURS
    lines: dict[float, list[str]] = {0.5: [], 0.95: []}
    points = []
    overall = [0] * (len(aggregates.LATENCY_BUCKETS) + 1)
    for c in range(HOURS):
        cumulative, _ = by_hour.get(first_hour + c, ([], 0.0))
        if not cumulative:
            continue
        overall = [a + b for a, b in zip(overall, cumulative, strict=True)]
        x = c * column + column / 2
        for q, line in lines.items():
            value = aggregates.quantile(q, cumulative)
            if value is not None:
                line.append(f"{x:.1f},{log_y(value):.1f}")
                title = f"p{int(q * 100)} {format_seconds(value)} ({cumulative[-1]} delivered)"
                points.append(Rect(x, log_y(value), 0, 0, f"p{int(q * 100)}", title))
    y_ticks = [Tick(log_y(seconds), label) for seconds, label in LATENCY_TICKS]
    p50, p95 = aggregates.quantile(0.5, overall), aggregates.quantile(0.95, overall)
    return LatencyChart(
        " ".join(lines[0.5]), " ".join(lines[0.95]), points, hour_ticks(first_hour), y_ticks, p50, p95, overall[-1]
    )


def format_seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 60:
        return f"{value:.2g} s" if value < 10 else f"{value:.0f} s"
    if value < 3600:
        return f"{value / 60:.0f} min"
    return f"{value / 3600:.1f} h"


def success_rates(since: dt.datetime) -> list[Rate]:
    counts = aggregates.attempts_by_endpoint_since(since)
    names = dict(Endpoint.objects.values_list("pk", "name"))
    rates = []
    for pk in sorted({pk for pk, _ in counts}, key=lambda pk: names.get(pk, "")):
        attempts = sum(n for (endpoint, _), n in counts.items() if endpoint == pk)
        delivered = counts.get((pk, "delivered"), 0)
        percent = 100 * delivered / attempts
        rates.append(Rate(names.get(pk, f"#{pk}"), delivered, attempts, percent, WIDTH * delivered / attempts))
    return rates


def charts(now: dt.datetime | None = None) -> Charts:
    now = now or timezone.now()
    start, first = window(now)
    emails = aggregates.per_hour(Email.objects.all(), "received_at", "decision", start)
    # By status first, so the (status, created) index serves each status's range.
    deliveries = aggregates.per_hour(Delivery.objects.filter(status__in=DELIVERY_STATUSES), "created", "status", start)
    return Charts(
        start=start,
        emails=stacked(emails, first, EMAIL_DECISIONS, ("email", "emails")),
        deliveries=stacked(deliveries, first, DELIVERY_STATUSES, ("delivery", "deliveries")),
        latency=latency_chart(first, start),
        rates=success_rates(start),
    )


def panel(now: dt.datetime | None = None) -> str:
    """The charts' HTML as rendered at most DASHBOARD_CHARTS_CACHE_SECONDS ago, shared through the
    cache by every web worker: hours of history move slowly, and the dashboard is opened often.
    The markup is what is kept, so a view reads one string instead of drawing a thousand shapes."""
    seconds = settings.DASHBOARD_CHARTS_CACHE_SECONDS
    now = now or timezone.now()
    if not seconds:
        return render_panel(now)
    key = f"signalserver:charts:{int(now.timestamp() // seconds)}"
    try:
        found = cache.get(key)
        if found is None:
            found = render_panel(now)
            cache.set(key, found, seconds)
    except (redis.RedisError, ConnectionInterrupted) as e:
        logger.warning("Dashboard: the cache is unavailable (%s); charts computed for this page only", e)
        return render_panel(now)
    html: str = mark_safe(found)  # noqa: S308  # nosec B308 B703: our autoescaped template's output, kept as text
    return html


def render_panel(now: dt.datetime) -> str:
    return render_to_string("dashboard/_charts.html", {"charts": charts(now)})
