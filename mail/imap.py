"""IMAP connections: open, log in, always log out."""

from __future__ import annotations

import contextlib
import imaplib
import logging
import socket
import ssl
from collections.abc import Iterator

from django.conf import settings
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from mail.models import Mailbox

logger = logging.getLogger(__name__)

# Everything a broken server, network or login can raise at us.
IMAP_ERRORS = (IMAPClientError, imaplib.IMAP4.error, OSError, EOFError)


def describe(error: BaseException) -> str:
    if isinstance(error, (TimeoutError, socket.timeout)):
        return f"timeout after {settings.IMAP_TIMEOUT_SECONDS} s"
    return f"{type(error).__name__}: {error}"


def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.IMAP_CA_FILE or None)


@contextlib.contextmanager
def connect(mailbox: Mailbox) -> Iterator[IMAPClient]:
    client = IMAPClient(
        mailbox.host,
        port=mailbox.port,
        ssl=mailbox.use_ssl,
        ssl_context=_ssl_context() if mailbox.use_ssl else None,
        timeout=settings.IMAP_TIMEOUT_SECONDS,
    )
    try:
        client.login(mailbox.username, mailbox.password)
        yield client
    finally:
        with contextlib.suppress(*IMAP_ERRORS):
            client.logout()


def test_connection(mailbox: Mailbox) -> str:
    """Log in and select the folder; a one-line human result."""
    try:
        with connect(mailbox) as client:
            info = client.select_folder(mailbox.folder, readonly=True)
            idle = b"IDLE" in client.capabilities()
    except IMAP_ERRORS as e:
        return f"Failed: {describe(e)}"
    count = info.get(b"EXISTS", 0)
    return f"OK: {count} message(s) in {mailbox.folder}; IDLE {'supported' if idle else 'not supported'}."
