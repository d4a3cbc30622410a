from __future__ import annotations

import datetime as dt
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from mail.models import Mailbox
from tests.conftest import ROOT
from tests.delivery.receiver import Receiver

IMAP_TOOL = Path(os.environ.get("IMAP_TEST_SERVER", str(ROOT / "scripts" / "imap-test-server")))


def start_imap_server(
    directory: str | None = None, port: int | None = None, ssl_port: int | None = None
) -> dict[str, str]:
    if not IMAP_TOOL.exists():
        pytest.skip(f"the IMAP test server tool is absent ({IMAP_TOOL}); set IMAP_TEST_SERVER")
    env = dict(os.environ)
    if port:
        env.update(IMAP_TEST_PORT=str(port), IMAP_TEST_SSL_PORT=str(ssl_port))
    args = [str(IMAP_TOOL), "start"] + ([directory] if directory else [])
    # Output goes to a file: Dovecot daemonises with our pipes open, so a pipe never closes.
    with tempfile.TemporaryFile("w+") as out:
        subprocess.run(args, stdout=out, stderr=subprocess.DEVNULL, check=True, env=env, timeout=300)
        out.seek(0)
        return dict(line.strip().split("=", 1) for line in out if "=" in line)


def stop_imap_server(directory: str, port: int, ssl_port: int) -> None:
    env = {**os.environ, "IMAP_TEST_PORT": str(port), "IMAP_TEST_SSL_PORT": str(ssl_port)}
    subprocess.run(
        [str(IMAP_TOOL), "stop", directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, timeout=60
    )


@dataclass
class ImapAccount:
    host: str
    port: int
    username: str
    password: str

    def client(self) -> IMAPClient:
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=30)
        client.login(self.username, self.password)
        return client

    def append(self, raw: bytes, flags: tuple[bytes, ...] = ()) -> None:
        client = self.client()
        try:
            client.append("INBOX", raw, flags=flags)
        finally:
            client.logout()

    def empty(self) -> None:
        client = self.client()
        try:
            client.select_folder("INBOX")
            uids = client.search(["ALL"])
            if uids:
                client.delete_messages(uids)
                client.expunge()
        finally:
            client.logout()

    def flags(self) -> dict[int, tuple[bytes, ...]]:
        client = self.client()
        try:
            client.select_folder("INBOX", readonly=True)
            uids = client.search(["ALL"])
            return {uid: data[b"FLAGS"] for uid, data in client.fetch(uids, ["FLAGS"]).items()} if uids else {}
        finally:
            client.logout()


@pytest.fixture(scope="session")
def imap_server() -> dict[str, str]:
    return start_imap_server()


@pytest.fixture
def imap(imap_server: dict[str, str]) -> Iterator[ImapAccount]:
    account = ImapAccount("127.0.0.1", int(imap_server["IMAP_PLAIN_PORT"]), imap_server["IMAP_USER"], "secret")
    account.empty()
    yield account


def always_active(**fields: object) -> dict[str, object]:
    return {"active_days": "0,1,2,3,4,5,6", "active_start": dt.time(0), "active_end": dt.time.max, **fields}


@pytest.fixture
def webhook_receiver(db: None, settings: Any) -> Iterator[Receiver]:
    """A default endpoint on a local receiver, so accepted mail is really handed on."""
    from delivery.models import Endpoint
    from tests.delivery.receiver import Receiver

    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    with Receiver() as receiver:
        Endpoint.objects.create(name="app", url=receiver.url, is_default=True)
        yield receiver


@pytest.fixture
def mailbox(db: None, imap: ImapAccount, webhook_receiver: Receiver) -> Mailbox:
    return Mailbox.objects.create(
        **always_active(
            name="orders",
            host=imap.host,
            port=imap.port,
            use_ssl=False,
            username=imap.username,
            password=imap.password,
        )
    )
