"""The image, proven: scripts/container-check builds the Dockerfile with Podman and runs it as a
container would (its CMD, as its USER, with its ENV), here with a production environment."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from deploys.local import alive as running
from tests.conftest import ROOT, free_port, session_of, wait_until
from tests.deploys.checkout import fresh_checkout

pytestmark = [pytest.mark.slow, pytest.mark.only_on("sqlite", "the image runs its own embedded database")]

TOOL = ROOT / "scripts" / "container-check"
TAG = "signalserver:container-test"
GRACEFUL_TIMEOUT = 30  # the image's default GUNICORN_GRACEFUL_TIMEOUT


@dataclass
class Container:
    pid: int
    root: Path
    log: Path
    port: int

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def tool(*args: str, timeout: float) -> str:
    result = subprocess.run([str(TOOL), *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("the container check needs root (Podman builds, chroot runs)")
    context = fresh_checkout(tmp_path_factory.mktemp("context"))
    tool("build", str(context), TAG, timeout=3000)
    yield TAG
    subprocess.run(["podman", "rmi", "-f", TAG], capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def container(image) -> Iterator[Container]:
    port = free_port()
    env = ["DEBUG=false", "SECRET_KEY=container-test-" + "x" * 40, "ALLOWED_HOSTS=localhost", f"PORT={port}"]
    values = dict(line.split("=", 1) for line in tool("run", image, *env, timeout=120).split())
    started = Container(int(values["PID"]), Path(values["ROOT"]), Path(values["LOG"]), port)
    try:
        wait_until(lambda: _status(started.url("/health/live")) == 200, timeout=180, message="the container answers")
        yield started
    finally:
        if running(started.pid):
            subprocess.run([str(TOOL), "stop", str(started.pid)], capture_output=True, timeout=120)


def _status(url: str) -> int:
    try:
        return requests.get(url, timeout=5).status_code
    except requests.RequestException:
        return 0


def inside(container: Container, code: str) -> subprocess.CompletedProcess[str]:
    """`python -c code` inside the container's root, as its user, with its environment."""
    env = ["env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin", f"PORT={container.port}"]
    command = ["chroot", "--userspec=signal:signal", str(container.root), *env, "python", "-c", code]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_health_answers_200_from_inside_the_image(container):
    fetch = (
        "import json, os, urllib.request; "
        "r = urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ['PORT'], timeout=10); "
        "print(r.status, json.dumps(json.load(r)))"
    )
    result = wait_until(
        lambda: (r := inside(container, fetch)).returncode == 0 and r, timeout=120, message="/health 200"
    )
    status, body = result.stdout.split(" ", 1)
    assert status == "200" and json.loads(body)["status"] == "ok", container.output()
    healthcheck = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{json .Config.Healthcheck.Test}}", TAG],
        capture_output=True,
        text=True,
    )
    kind, command = json.loads(healthcheck.stdout)
    assert kind == "CMD-SHELL" and "/health/live" in command
    run = ["chroot", "--userspec=signal:signal", str(container.root), "env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin"]
    assert subprocess.run([*run, f"PORT={container.port}", "/bin/sh", "-c", command], timeout=60).returncode == 0


def test_every_process_runs_as_the_non_root_user(container):
    session = [p for p in Path("/proc").iterdir() if p.name.isdigit() and session_of(p) == container.pid]
    assert len(session) >= 3, "serve, Gunicorn and the job cluster"
    for process in session:
        uids = next(line for line in (process / "status").read_text().splitlines() if line.startswith("Uid:"))
        assert set(uids.split()[1:]) == {"10001"}, (process, uids)


def test_static_files_are_served(container):
    proxied = {"X-Forwarded-Proto": "https"}  # behind Render's TLS proxy; plain http is redirected
    page = requests.get(container.url("/login"), timeout=10, headers=proxied)
    assert page.status_code == 200
    stylesheet = re.search(r'href="(/static/signalserver/app\.[0-9a-f]{12}\.css)"', page.text)
    assert stylesheet, page.text[:500]
    css = requests.get(container.url(stylesheet.group(1)), timeout=10, headers={**proxied, "Accept-Encoding": "gzip"})
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    assert "max-age" in css.headers.get("Cache-Control", "")


def test_sigterm_stops_it_cleanly_within_the_graceful_timeout(container):
    started = time.monotonic()
    stop = subprocess.run([str(TOOL), "stop", str(container.pid)], capture_output=True, text=True, timeout=120)
    took = time.monotonic() - started
    assert stop.returncode == 0, stop.stderr
    assert took < GRACEFUL_TIMEOUT, f"stopped after {took:.1f} s"
    output = container.output()
    assert "Shutting down: Master" in output and "Traceback" not in output
