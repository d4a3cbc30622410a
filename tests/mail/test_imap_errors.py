"""IMAP failures explained in words: the likely cause and the fix, caused for real against Dovecot.

What Python says (SSLError, gaierror, LoginError…) goes to the log, never to the page.
"""

from __future__ import annotations

import pytest

from mail import imap
from mail.models import Mailbox
from tests.conftest import free_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


@pytest.fixture
def server(imap_server: dict[str, str]) -> dict[str, str]:
    return imap_server


def box(server: dict[str, str], **fields: object) -> Mailbox:
    values: dict[str, object] = {
        "name": "orders",
        "host": "127.0.0.1",
        "port": int(server["IMAP_PLAIN_PORT"]),
        "use_ssl": False,
        "username": server["IMAP_USER"],
        "password": "secret",
        **fields,
    }
    return Mailbox(**values)


def result(mailbox: Mailbox) -> str:
    """What the admin's connection test shows."""
    return imap.test_connection(mailbox)


def test_ssl_on_a_plain_port(server, caplog):
    port = int(server["IMAP_PLAIN_PORT"])
    assert result(box(server, use_ssl=True)) == (
        f"Failed: 127.0.0.1:{port} does not speak TLS: SSL/TLS is ticked, but this port expects plain IMAP. "
        "Use port 993 with SSL/TLS, or untick SSL/TLS for port 143."
    )
    assert "WRONG_VERSION_NUMBER" in caplog.text


def test_a_private_certificate_points_at_imap_ca_file(server, settings, caplog):
    secure = box(server, use_ssl=True, port=int(server["IMAP_PORT"]))
    assert result(secure) == (
        "Failed: The TLS certificate of 127.0.0.1 could not be verified (self-signed certificate). If the server "
        "uses a private or self-signed certificate, set IMAP_CA_FILE to its CA bundle; otherwise check the host name."
    )
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    settings.IMAP_CA_FILE = server["IMAP_CA_FILE"]  # the fix the sentence gives
    assert result(secure).startswith("OK: ")


def test_an_unknown_host(server, caplog):
    assert result(box(server, host="imap.no-such-host.invalid")) == (
        "Failed: The host name imap.no-such-host.invalid could not be found. Check the host of the mailbox "
        "(and that this machine can resolve names)."
    )
    assert "gaierror" in caplog.text


def test_nothing_listening(server):
    port = free_port()
    assert result(box(server, port=port)).startswith(f"Failed: 127.0.0.1:{port} refused the connection")


def test_plain_imap_on_the_tls_port_times_out_with_a_hint(server, settings):
    settings.IMAP_TIMEOUT_SECONDS = 1
    port = int(server["IMAP_PORT"])
    assert result(box(server, port=port)) == (
        f"Failed: 127.0.0.1:{port} did not answer within 1 s (IMAP_TIMEOUT_SECONDS). Check the host, the port "
        "and any firewall on the way."
    )
    assert "tick SSL/TLS" in imap.explain(TimeoutError(), box(server, port=993))


def test_a_wrong_password(server, caplog):
    assert result(box(server, password="wrong")) == (
        f"Failed: The server refused the login of {server['IMAP_USER']}: the username or password is wrong. "
        "Correct them in Mail › Mailboxes (Gmail and Outlook need an app password)."  # noqa: RUF001
    )
    assert "AUTHENTICATIONFAILED" in caplog.text


def test_a_missing_folder(server):
    assert result(box(server, folder="Commandes")) == (
        "Failed: The folder 'Commandes' does not exist on the server. Check the folder of the mailbox."
    )
