"""`make demo`, run as a new user would: every sample email reaches its decision, the receiver
verifies every webhook, new mail shows up at once, and Ctrl-C leaves nothing running."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from demo.samples import demo_samples, outside_window_samples
from tests.conftest import ROOT, base_env, free_port, wait_until
from tests.mail.conftest import IMAP_TOOL

pytestmark = [pytest.mark.slow, pytest.mark.only_on("sqlite", "the demo always runs the embedded default")]
READY_TIMEOUT = 300  # installs nothing when `make test` ran first; then migrations, start-up, ~30 emails


class Demo:
    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path / "demo"
        self.imap_dir = str(tmp_path / "imap")
        self.web_port = free_port()
        self.env = base_env(
            IMAP_TEST_SERVER=str(IMAP_TOOL),
            IMAP_TEST_DIR=self.imap_dir,
            IMAP_TEST_PORT=str(free_port()),
            IMAP_TEST_SSL_PORT=str(free_port()),
            PORT=str(self.web_port),
            DEMO_DIR=str(self.dir),
        )
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            ["make", "-s", "demo"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, b""):
            self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def decisions(self) -> Counter[tuple[str, str]]:
        with sqlite3.connect(self.dir / "demo.sqlite3") as db:
            return Counter(db.execute("SELECT subject, decision FROM mail_email").fetchall())

    def interrupt(self) -> None:
        """Ctrl-C in the terminal: to make and the demo; returns once both have exited."""
        os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait(timeout=120)
        wait_until(lambda: not self._group_alive(), timeout=120, message="the demo exits")

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
        except ProcessLookupError:
            return False
        return True


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    if not IMAP_TOOL.exists():
        pytest.skip(f"the IMAP test server tool is absent ({IMAP_TOOL}); set IMAP_TEST_SERVER")
    running = Demo(tmp_path)
    yield running
    if running.proc.poll() is None:
        os.killpg(running.proc.pid, signal.SIGKILL)
        running.proc.wait()


def sign_in(link: str) -> requests.Session:
    session = requests.Session()
    page = session.get(link, timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, page.text
    session.post(link, data={"csrfmiddlewaretoken": token.group(1)}, headers={"Referer": link}, timeout=10)
    return session


def test_make_demo_shows_the_whole_service_and_stops_cleanly(demo):
    wait_until(lambda: "Ctrl-C stops the demo." in demo.output, timeout=READY_TIMEOUT, message=demo.output[-3000:])
    assert "DEMO CHECK OK" in demo.output, demo.output

    samples = demo_samples() + outside_window_samples()
    expected = Counter((s.subject, s.expected) for s in samples if s.expected)
    assert demo.decisions() == expected
    delivered = sum(s.webhook for s in samples)
    assert demo.output.count("signature OK") == delivered and "REJECTED" not in demo.output

    sent = subprocess.run(
        [sys.executable, "-m", "demo", "send"], cwd=ROOT, env=demo.env, capture_output=True, text=True, timeout=60
    )
    assert sent.returncode == 0, sent.stderr
    subject = re.search(r"“(.+)”", sent.stdout).group(1)  # type: ignore[union-attr]
    wait_until(lambda: f"signature OK: recadrage, delivery 17h30, wetransfer | {subject}" in demo.output, timeout=30)
    assert demo.decisions()[(subject, "delivered")] == 1

    link = re.search(r"http://127\.0\.0\.1:\d+/login/magic/\S+", demo.output).group(0)  # type: ignore[union-attr]
    dashboard = sign_in(link).get(f"http://127.0.0.1:{demo.web_port}/", timeout=10)
    assert dashboard.status_code == 200 and subject in dashboard.text

    demo.interrupt()
    assert demo.lines[-1] == "Stopping the demo…"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{demo.web_port}/health/live", timeout=2)
    status = subprocess.run([str(IMAP_TOOL), "status"], env=demo.env, capture_output=True, timeout=30)
    assert status.returncode == 3  # the demo stopped the IMAP server it started


def test_sending_mail_without_a_running_demo_says_how_to_start_it(tmp_path):
    env = base_env(DEMO_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "demo", "send"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 1 and "make demo" in result.stderr
