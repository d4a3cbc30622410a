"""R2 offload: ask the Cloudflare Worker to copy each link's file to R2 (reference §4).

Any failure keeps the source links: the webhook always goes. Deliveries of an email wait for
its transfers to finish or reach their deadline (120 s for Dropbox folders, 15 s otherwise).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import logging
import re
import urllib.parse
from typing import Any

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from delivery import http
from delivery.models import LinkTransfer, StoredLink

logger = logging.getLogger(__name__)

WORKER_USER_AGENT = "render-signal-server/r2-transfer"
DEADLINE_MARGIN_SECONDS = 15
_SLASHES_RE = re.compile(r"/{2,}")


def _unquote_amp(url: str) -> str:
    for _ in range(3):
        candidate = urllib.parse.unquote(re.sub(r"amp%3[bB]", "&", url))
        if candidate == url or "://" not in candidate:
            break
        url = candidate
    return url


def normalize_url(url: str, provider: str) -> str:
    """The canonical form used for R2 requests and link history (reference §2.3)."""
    if provider != "dropbox":
        return html.unescape(url.strip())
    url = html.unescape(_unquote_amp(url.strip()))
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    netloc = host
    if parts.username:
        userinfo = parts.username + (f":{parts.password}" if parts.password else "")
        netloc = f"{userinfo}@{host}"
    if parts.port and parts.port != 443 and parts.port != 80:
        netloc += f":{parts.port}"
    path = _SLASHES_RE.sub("/", urllib.parse.unquote(parts.path))
    if len(path) > 1:
        path = path.rstrip("/")
    path = urllib.parse.quote(path, safe="/-._~")
    pairs: list[tuple[str, str]] = []
    for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if not key or key == "dl" or (not value and key != "rlkey") or (key, value) in pairs:
            continue
        pairs.append((key, value))
    pairs.append(("dl", "1"))
    pairs.sort(key=lambda kv: (kv[0].lower(), kv[1]))
    return urllib.parse.urlunsplit(("https", netloc, path or "/", urllib.parse.urlencode(pairs), ""))


def allowed(url: str) -> bool:
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    return any(host == d or host.endswith("." + d) for d in settings.R2_ALLOWED_DOMAINS)


def timeout_for(provider: str, normalized_url: str) -> int:
    return 120 if provider == "dropbox" and "/scl/fo/" in normalized_url else 15


def object_key(provider: str, normalized_url: str) -> str:
    digest = hashlib.sha256(normalized_url.encode()).hexdigest()
    segment = urllib.parse.unquote(urllib.parse.urlsplit(normalized_url).path.rstrip("/").rsplit("/", 1)[-1])
    filename = segment if "." in segment else "file"
    return f"{provider}/{digest[:8]}/{digest[8:16]}/{filename}"


def reusable(normalized_url: str, provider: str) -> StoredLink | None:
    if not settings.R2_REUSE_HOURS:
        return None
    since = timezone.now() - dt.timedelta(hours=settings.R2_REUSE_HOURS)
    return StoredLink.objects.filter(source_url=normalized_url, provider=provider, created__gte=since).first()


def prepare(email: Any) -> list[LinkTransfer]:
    """Create the email's transfers once (reusing known copies); returns those still to run."""
    if LinkTransfer.objects.filter(email_id=email.pk).exists():
        return []
    now = timezone.now()
    to_run = []
    for link in email.links:
        provider, raw = link["provider"], link["raw_url"]
        if "/request/" in raw or not allowed(raw):
            continue  # upload pages and hosts outside the allow-list are never fetched
        normalized = normalize_url(raw, provider)
        known = reusable(normalized, provider)
        transfer = LinkTransfer.objects.create(
            email_id=email.pk,
            source_url=raw,
            normalized_url=normalized,
            provider=provider,
            status="success" if known else "pending",
            r2_url=known.r2_url if known else "",
            original_filename=known.original_filename if known else "",
            deadline=now + dt.timedelta(seconds=timeout_for(provider, normalized) + DEADLINE_MARGIN_SECONDS),
        )
        if known:
            logger.info("R2_TRANSFER: reused %s for email %s", known.r2_url, email.email_id)
        else:
            to_run.append(transfer)
    return to_run


def waiting_until(email_id: int, now: dt.datetime) -> dt.datetime | None:
    """When the email's unfinished transfers time out (None when none is left to wait for)."""
    unfinished = LinkTransfer.objects.filter(
        Q(status__in=("pending", "running")), email_id=email_id, deadline__gt=now
    ).order_by("-deadline")
    latest = unfinished.values_list("deadline", flat=True).first()
    return latest


def enrich(email_id: int, links: list[dict[str, str]]) -> list[dict[str, str]]:
    copies = {
        t.source_url: t for t in LinkTransfer.objects.filter(email_id=email_id, status="success").exclude(r2_url="")
    }
    enriched = []
    for link in links:
        item = dict(link)
        copy = copies.get(link["raw_url"])
        if copy:
            item["r2_url"] = copy.r2_url
            if copy.original_filename:
                item["original_filename"] = copy.original_filename
        enriched.append(item)
    return enriched


def call_worker(source_url: str, provider: str, email_id: str = "") -> tuple[str, str]:
    """(r2_url, original_filename); raises http.HttpError with a human message on any failure."""
    normalized = normalize_url(source_url, provider)
    if not allowed(normalized):
        raise http.HttpError(f"{urllib.parse.urlsplit(normalized).hostname} is not in R2_ALLOWED_DOMAINS", True)
    body = {
        "source_url": normalized,
        "object_key": object_key(provider, normalized),
        "bucket": settings.R2_BUCKET_NAME,
        "provider": provider,
        "email_id": email_id,
    }
    response = http.post(
        settings.R2_FETCH_ENDPOINT,
        json.dumps(body).encode(),
        {
            "Content-Type": "application/json",
            "X-R2-FETCH-TOKEN": settings.R2_FETCH_TOKEN,
            "User-Agent": WORKER_USER_AGENT,
        },
        timeout_for(provider, normalized),
    )
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code != 200 or not isinstance(data, dict) or not data.get("success"):
        detail = (data or {}).get("error") or (data or {}).get("message") if isinstance(data, dict) else None
        raise http.HttpError(f"Worker answered HTTP {response.status_code}" + (f": {detail}" if detail else ""))
    r2_url = data.get("r2_url")
    if not isinstance(r2_url, str) or not r2_url:
        raise http.HttpError("Worker answered without r2_url")
    filename = data.get("original_filename")
    return r2_url, filename.strip() if isinstance(filename, str) else ""


def run(transfer_id: int) -> str:
    """Run one transfer (a job per link, so an email's links go in parallel)."""
    if LinkTransfer.objects.filter(pk=transfer_id, status="pending").update(status="running") != 1:
        return "already taken"
    transfer = LinkTransfer.objects.select_related("email").get(pk=transfer_id)
    email = transfer.email
    try:
        r2_url, filename = call_worker(transfer.source_url, transfer.provider, email.email_id)
    except http.HttpError as e:
        transfer.status, transfer.error = "failed", e.message
        transfer.save(update_fields=["status", "error"])
        logger.warning(
            "R2_TRANSFER: failed provider=%s email=%s error=%s (fallback to source URLs)",
            transfer.provider,
            email.email_id,
            e.message,
        )
        return "failed"
    transfer.status, transfer.r2_url, transfer.original_filename = "success", r2_url, filename
    transfer.save(update_fields=["status", "r2_url", "original_filename"])
    StoredLink.objects.get_or_create(
        source_url=transfer.normalized_url,
        r2_url=r2_url,
        provider=transfer.provider,
        defaults={"original_filename": filename, "email_id": email.pk},
    )
    logger.info("R2_TRANSFER: success provider=%s email=%s r2_url=%s", transfer.provider, email.email_id, r2_url)
    return "success"
