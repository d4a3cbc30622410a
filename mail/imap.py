"""IMAP connections: open, log in, always log out; errors explained in words."""

from __future__ import annotations

import contextlib
import imaplib
import logging
import socket
import ssl
from collections.abc import Iterator

from django.conf import settings
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from mail.models import Mailbox

logger = logging.getLogger(__name__)

# Everything a broken server, network or login can raise at us.
IMAP_ERRORS = (IMAPClientError, imaplib.IMAP4.error, OSError, EOFError)
_LOGIN_REFUSED = ("AUTHENTICATIONFAILED", "AUTHENTICATE FAILED", "LOGIN FAILED", "INVALID CREDENTIALS")
_PLAIN_LOGIN_REFUSED = ("PRIVACYREQUIRED", "LOGINDISABLED", "PLAINTEXT AUTHENTICATION DISALLOWED")


def technical(error: BaseException) -> str:
    """The error as Python states it, for the log."""
    return f"{type(error).__name__}: {error}"


def _where(mailbox: Mailbox) -> str:
    return f"{mailbox.host}:{mailbox.port}"


def _explain_tls(error: ssl.SSLError, mailbox: Mailbox) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        why = error.verify_message or "unknown reason"
        return (
            f"The TLS certificate of {mailbox.host} could not be verified ({why}). If the server uses a private "
            "or self-signed certificate, set IMAP_CA_FILE to its CA bundle; otherwise check the host name."
        )
    if error.reason in ("WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
        return (
            f"{_where(mailbox)} does not speak TLS: SSL/TLS is ticked, but this port expects plain IMAP. "
            "Use port 993 with SSL/TLS, or untick SSL/TLS for port 143."
        )
    return f"The TLS handshake with {_where(mailbox)} failed. Check the port and the SSL/TLS setting of the mailbox."


def _explain_network(error: OSError, mailbox: Mailbox) -> str:
    if isinstance(error, socket.gaierror):
        return (
            f"The host name {mailbox.host} could not be found. Check the host of the mailbox "
            "(and that this machine can resolve names)."
        )
    if isinstance(error, ConnectionRefusedError):
        return (
            f"{_where(mailbox)} refused the connection: nothing listens on that port. Check the host and "
            "the port (993 with SSL/TLS, 143 without)."
        )
    if isinstance(error, TimeoutError | socket.timeout):
        hint = " Port 993 expects TLS: tick SSL/TLS." if mailbox.port == 993 and not mailbox.use_ssl else ""
        return (
            f"{_where(mailbox)} did not answer within {settings.IMAP_TIMEOUT_SECONDS} s "
            f"(IMAP_TIMEOUT_SECONDS). Check the host, the port and any firewall on the way.{hint}"
        )
    if isinstance(error, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return _CLOSED
    return f"{_where(mailbox)} could not be reached ({error.strerror or 'network error'}). Check the host and the port."


_CLOSED = (
    "The IMAP server closed the connection. The poller reconnects by itself; if this keeps happening, "
    "check the server's limits on simultaneous connections."
)


def _explain_answer(error: Exception, mailbox: Mailbox) -> str:
    text = str(error).upper()
    if isinstance(error, LoginError) or any(marker in text for marker in _LOGIN_REFUSED):
        if any(marker in text for marker in _PLAIN_LOGIN_REFUSED):
            return "The server refuses passwords over an unencrypted connection: tick SSL/TLS (usually port 993)."
        return (
            f"The server refused the login of {mailbox.username}: the username or password is wrong. Correct "
            "them in Mail › Mailboxes (Gmail and Outlook need an app password)."  # noqa: RUF001
        )
    if "SELECT FAILED" in text or "NONEXISTENT" in text:
        return f"The folder {mailbox.folder!r} does not exist on the server. Check the folder of the mailbox."
    return "The IMAP server answered with an error the poller did not expect. The log has the details."


def explain(error: BaseException, mailbox: Mailbox) -> str:
    """What went wrong, in a sentence an operator can act on: the likely cause and the fix.

    The exception's own text stays in the log (see `technical`).
    """
    if isinstance(error, ssl.SSLError):
        return _explain_tls(error, mailbox)
    if isinstance(error, OSError):
        return _explain_network(error, mailbox)
    if isinstance(error, EOFError):
        return _CLOSED
    if isinstance(error, Exception):
        return _explain_answer(error, mailbox)
    return technical(error)


def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=settings.IMAP_CA_FILE or None)


def open_client(mailbox: Mailbox) -> IMAPClient:
    """A logged-in connection; the caller logs out (see `connect`)."""
    client = IMAPClient(
        mailbox.host,
        port=mailbox.port,
        ssl=mailbox.use_ssl,
        ssl_context=_ssl_context() if mailbox.use_ssl else None,
        timeout=settings.IMAP_TIMEOUT_SECONDS,
    )
    # Commands go out in several small writes: without this, each one may wait for the
    # server's delayed ACK (40 ms) before its end is sent.
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    quiet_imaplib(client)
    try:
        client.login(mailbox.username, mailbox.password)
    except BaseException:
        logout(client)
        raise
    return client


def quiet_imaplib(client: IMAPClient) -> None:
    """Stop imaplib's debug output on this connection unless its logger records DEBUG.

    imapclient sets imaplib's debug level to 5 and sends its output to the
    "imapclient.imaplib" logger, which drops it below DEBUG; but imaplib formats each
    message first, and at level 5 that is every response, fetched messages included, with
    `%r`, twice: for a 2 MB partial fetch, 4.6 MB of text made and thrown away (and the CPU
    time to make it, for every message of a backlog).
    """
    if not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
        client._imap.debug = 0


def logout(client: IMAPClient) -> None:
    with contextlib.suppress(*IMAP_ERRORS):
        client.logout()


def select(client: IMAPClient, folder: str) -> int:
    """Select the folder; its UIDVALIDITY."""
    return int(client.select_folder(folder)[b"UIDVALIDITY"])


@contextlib.contextmanager
def connect(mailbox: Mailbox) -> Iterator[IMAPClient]:
    client = open_client(mailbox)
    try:
        yield client
    finally:
        logout(client)


def refused(error: BaseException) -> bool:
    """True when the server answered a command with NO or BAD (it will answer the same again),
    as opposed to a connection that broke or timed out."""
    if not isinstance(error, imaplib.IMAP4.error):
        return False
    return isinstance(error, imaplib.IMAP4.readonly) or not isinstance(error, imaplib.IMAP4.abort)


def new_mail_announced(client: IMAPClient) -> bool:
    """True when the server announced mail (EXISTS) since the last call; forgets what it announced.

    A server reports mail that arrived while a command ran at the end of that command, after
    the command's own answer: a SEARCH can miss a message and announce it in the same breath.
    imapclient leaves such announcements in its imaplib connection's untagged responses; this
    reads and clears them, so none is acted on twice and they do not pile up.
    """
    untagged = client._imap.untagged_responses
    announced = "EXISTS" in untagged
    untagged.clear()
    return announced


def has_unread_responses(client: IMAPClient) -> bool:
    """True when the server has sent something this side has not read yet.

    imapclient's idle_check polls the socket, so it misses lines that already arrived with
    an earlier one and wait in the connection's read buffer (news sent together with IDLE's
    "+ idling"); until more data came, such news would wait for the next IDLE renewal. This
    looks into the buffer without blocking (reading the socket into it when it is empty).
    """
    sock = client.socket()
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return bool(client._imap.file.peek(1))
    except OSError:  # nothing to read (ssl.SSLWantReadError, BlockingIOError)
        return False
    finally:
        sock.settimeout(timeout)


def test_connection(mailbox: Mailbox) -> str:
    """Log in and select the folder; a one-line human result."""
    try:
        with connect(mailbox) as client:
            info = client.select_folder(mailbox.folder, readonly=True)
            idle = b"IDLE" in client.capabilities()
    except IMAP_ERRORS as e:
        logger.warning("IMAP: connection test of %s failed: %s", mailbox, technical(e))
        return f"Failed: {explain(e, mailbox)}"
    count = info.get(b"EXISTS", 0)
    return f"OK: {count} message(s) in {mailbox.folder}; IDLE {'supported' if idle else 'not supported'}."
