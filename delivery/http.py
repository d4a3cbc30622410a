"""The one outbound HTTP module: webhooks, the R2 Worker and deploy hooks all go through it.

Its contract: a mandatory timeout, a fixed User-Agent, no redirects, private and loopback
targets refused after DNS resolution (unless WEBHOOK_ALLOW_PRIVATE_TARGETS), and one error
type carrying a human message.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any

import urllib3
from django.conf import settings
from urllib3.exceptions import HTTPError as TransportError
from urllib3.exceptions import NameResolutionError, NewConnectionError, SSLError
from urllib3.exceptions import TimeoutError as TransportTimeout

logger = logging.getLogger(__name__)

USER_AGENT = "signalserver/1.0 (+webhooks)"
# Keep-alive connections for as many requests at a time as the sender makes to one host.
# urllib3 directly (the client beneath requests): requests' session layer cost as much CPU
# per webhook as the request itself. Certificates are verified against the system's CAs.
_pool = urllib3.PoolManager(maxsize=max(10, settings.DELIVERY_CONCURRENCY), retries=False)


class HttpError(Exception):
    """`permanent`: retrying cannot help (a refused target), as opposed to a network failure."""

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent


@dataclass
class Response:
    status_code: int
    body: bytes
    headers: dict[str, str]
    duration_ms: int

    def json(self) -> Any:
        import json

        return json.loads(self.body)


def _allowed_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return ip.is_global and not ip.is_multicast


def _refused(message: str) -> HttpError:
    if settings.DEBUG:
        message += (
            ". For local development (a receiver on this machine, plain http), set "
            "WEBHOOK_ALLOW_PRIVATE_TARGETS=true in the environment"
        )
    return HttpError(message + ".", permanent=True)


def check_target(url: str) -> None:
    """Refuse URLs that are not https, or that resolve to private/loopback/link-local addresses."""
    parts = urllib.parse.urlsplit(url)
    allow_private = settings.WEBHOOK_ALLOW_PRIVATE_TARGETS
    if parts.scheme != "https" and not (allow_private and parts.scheme == "http"):
        raise _refused(f"Only https URLs are allowed ({parts.scheme or 'no scheme'} given)")
    if not parts.hostname:
        raise HttpError("The URL has no host", permanent=True)
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as e:
        raise HttpError(f"Cannot resolve {parts.hostname}: {e}") from None
    for info in infos:
        address = str(info[4][0])
        if not _allowed_address(address):
            raise _refused(f"{parts.hostname} resolves to {address}, a private or reserved address")


def _where(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def _cause(error: TransportError) -> BaseException:
    """The underlying failure (its text names the host, not the URL's path and query)."""
    reason = getattr(error, "reason", None)
    return reason if isinstance(reason, BaseException) else error


def explain(error: TransportError, url: str) -> str:
    """What went wrong, in a sentence, without the URL's path or query (which may hold a key)."""
    host, where = urllib.parse.urlsplit(url).hostname, _where(url)
    if isinstance(error, SSLError):
        return f"The TLS certificate of {host} was not accepted: the receiver needs a valid certificate for it."
    if isinstance(error, NameResolutionError):
        return f"The host name {host} could not be found: check the endpoint's URL."
    if isinstance(error, NewConnectionError) and "Connection refused" in str(error):
        return f"{where} refused the connection: is the receiving application running?"
    return f"The connection to {where} failed or was cut before an answer came."


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Response:
    """POST `body`; checks the target again at send time (the DNS answer may have changed)."""
    return request("POST", url, headers, timeout, body)


def get(url: str, headers: dict[str, str], timeout: float) -> Response:
    return request("GET", url, headers, timeout)


def request(method: str, url: str, headers: dict[str, str], timeout: float, body: bytes | None = None) -> Response:
    check_target(url)
    started = time.perf_counter()
    # Credentials in the URL (https://user:password@host/…) go as Basic authentication.
    auth = urllib3.util.parse_url(url).auth
    credentials = urllib3.util.make_headers(basic_auth=urllib.parse.unquote(auth)) if auth else {}
    try:
        response = _pool.request(
            method,
            url,
            body=body,
            headers={"User-Agent": USER_AGENT, **credentials, **headers},
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            redirect=False,
        )
    except TransportError as e:
        # urllib3 makes a refused or unresolvable connection a kind of connect timeout.
        if isinstance(e, TransportTimeout) and not isinstance(e, NewConnectionError):
            raise HttpError(f"Timed out after {timeout:g} s") from None
        cause = _cause(e)
        logger.warning("HTTP: %s to %s failed: %s: %s", method, _where(url), type(cause).__name__, cause)
        raise HttpError(explain(e, url)) from None
    return Response(
        status_code=response.status,
        body=response.data[:65536],
        headers=dict(response.headers),
        duration_ms=round((time.perf_counter() - started) * 1000),
    )
