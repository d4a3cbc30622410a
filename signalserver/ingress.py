"""`POST /api/ingress/gmail`: the original's Google Apps Script client, answered as the original did.

Checks in order, and the answer when one fails:
- `Authorization: Bearer <token>` (or the bare token), the token being `PROCESS_API_TOKEN` or
  an API token of scope `ingress`: else 401 `Unauthorized`;
- with `GMAIL_INGRESS_IP_CHECK_ENABLED`, a caller at a Google address: else 403;
- a body of at most `GMAIL_INGRESS_MAX_BYTES`: else 413;
- a JSON object with string fields, `sender` and `body` not empty: else 400 naming the problem;
- the kill switch (Gmail push ingress, in the admin) on: else 409 `Gmail ingress disabled`.
Then the message is recorded in this request's transaction: 200 with `queued`,
`already_processed` or `skipped_sender_not_allowed`.

Delivery then goes through the outbox like polled mail: the answer never waits for it.
"""

from __future__ import annotations

import hmac
import logging
import socket

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from mail import ingress
from signalserver.accounts import client_ip
from signalserver.models import ApiToken

logger = logging.getLogger(__name__)

GOOGLE_SUFFIXES = (".google.com", ".googleusercontent.com")
GOOGLE_CHECK_CACHE_SECONDS = 3600


class TooLarge(Exception):
    pass


def refused(status: int, message: str) -> JsonResponse:
    return JsonResponse({"success": False, "message": message}, status=status)


def presented_token(request: HttpRequest) -> str:
    """The token of `Authorization: Bearer <token>`, or the whole header (the original took both)."""
    header = request.headers.get("Authorization", "").strip()
    return header[7:].strip() if header[:7].lower() == "bearer " else header


def authorized(token: str) -> bool:
    if not token:
        return False
    if ApiToken.authenticate(token, "ingress") is not None:
        return True
    expected = settings.PROCESS_API_TOKEN
    return bool(expected) and hmac.compare_digest(token.encode(), expected.encode())


def reverse_dns(ip: str) -> str:
    return socket.gethostbyaddr(ip)[0]


def forward_dns(host: str) -> set[str]:
    return {str(info[4][0]) for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}


def is_google(ip: str) -> bool:
    """Reverse DNS under google.com/googleusercontent.com, confirmed by resolving the name back.

    The forward check matters: whoever controls an address's reverse zone can name it
    anything, but cannot make Google's names resolve to it.
    """
    try:
        host = reverse_dns(ip).rstrip(".").lower()
        return host.endswith(GOOGLE_SUFFIXES) and ip in forward_dns(host)
    except OSError:  # no PTR record, resolver failure
        return False


def from_google(ip: str | None) -> bool:
    if not ip:
        return False
    key = f"ingress:google-ip:{ip}"
    known = cache.get(key)
    if known is None:
        known = is_google(ip)
        cache.set(key, known, GOOGLE_CHECK_CACHE_SECONDS)
    return bool(known)


def read_body(request: HttpRequest, limit: int) -> bytes:
    """The request body, refusing (TooLarge) anything above `limit` bytes without reading it all."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise TooLarge
    body = request.read(limit + 1)
    if len(body) > limit:
        raise TooLarge
    return body


@never_cache
@csrf_exempt
@require_POST
def gmail(request: HttpRequest) -> HttpResponse:
    ip = client_ip(request)
    if not authorized(presented_token(request)):
        logger.warning("INGRESS: refused a push without a valid token from %s", ip)
        return refused(401, "Unauthorized")
    if settings.GMAIL_INGRESS_IP_CHECK_ENABLED and not from_google(ip):
        logger.warning("INGRESS_IP: Blocked non-Google IP %s from Gmail ingress", ip)
        return refused(403, "Forbidden: IP not from Google")
    limit = settings.GMAIL_INGRESS_MAX_BYTES
    try:
        raw = read_body(request, limit)
    except TooLarge:
        logger.warning("INGRESS: refused a push over %d bytes (GMAIL_INGRESS_MAX_BYTES) from %s", limit, ip)
        return refused(413, f"Payload too large: the limit is {limit} bytes")
    try:
        outcome = ingress.receive(ingress.parse_push(raw), raw)
    except ingress.PushRefused as e:
        logger.info("INGRESS: refused push from %s: %s", ip, e.message)
        return refused(e.status, e.message)
    return JsonResponse(answer(outcome))


def answer(outcome: ingress.Outcome) -> dict[str, object]:
    body: dict[str, object] = {"success": True, "status": outcome.status, "email_id": outcome.email_id}
    if outcome.email is not None:
        body.update(decision=outcome.email.decision, reason=outcome.email.reason)
    return body
