"""What the release test and bench/release_bench.py share: release sources, a steady load, and
`serve` running from RELEASES_DIR/current."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from deploys.local import alive as running
from tests.conftest import ROOT
from tests.deploys.checkout import fresh_checkout

# Kept between runs: the virtualenv a release installs is reused when requirements.txt is unchanged.
# RELEASE_TEST_DIR gives each of two runs side by side its own (scripts/test runs two passes so).
RELEASES_ROOT = Path(os.environ.get("RELEASE_TEST_DIR", str(ROOT / "var" / "release-test")))
HEALTH_LIVE = 'return JsonResponse({"status": "ok"})'


def source(dest: Path, build: str = "", broken: bool = False) -> Path:
    """A release source: this repository's files; `build` shows in /health/live; `broken` fails at import."""
    fresh_checkout(dest)
    views = dest / "signalserver" / "views.py"
    if build:
        text = views.read_text()
        assert HEALTH_LIVE in text
        views.write_text(text.replace(HEALTH_LIVE, f'return JsonResponse({{"status": "ok", "build": "{build}"}})'))
    if broken:
        wsgi = dest / "signalserver" / "wsgi.py"
        wsgi.write_text(wsgi.read_text() + '\nraise RuntimeError("this release is broken")\n')
    return dest


def git_repository(dest: Path) -> Path:
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-q", "-m", "release source"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@example.test", *args], cwd=dest, check=True, timeout=60
        )
    return dest


def reset(root: Path) -> None:
    """An empty release directory, keeping the virtualenvs of earlier runs."""
    root.mkdir(parents=True, exist_ok=True)
    for path in root.iterdir():
        if path.name != "venvs":
            shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


@dataclass
class Answer:
    at: float
    status: int  # 0: no answer (connection refused, reset, timeout)
    release: str
    build: str


@dataclass
class Load:
    """`threads` clients each sending GET /health/live on a new connection, without pause."""

    url: str
    threads: int = 4
    answers: list[Answer] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Load:
        self.workers = [threading.Thread(target=self.client, daemon=True) for _ in range(self.threads)]
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for worker in self.workers:
            worker.join(timeout=15)

    def client(self) -> None:
        session = requests.Session()
        deadline = time.monotonic() + 600  # bounded, whatever happens
        while not self.stopping.is_set() and time.monotonic() < deadline:
            try:
                response = session.get(self.url, timeout=10, headers={"Connection": "close"})
                build = response.json().get("build", "") if response.status_code == 200 else ""
                answer = Answer(time.monotonic(), response.status_code, response.headers.get("X-Release", ""), build)
            except (requests.RequestException, ValueError):
                answer = Answer(time.monotonic(), 0, "", "")
            self.answers.append(answer)

    @property
    def failed(self) -> list[Answer]:
        return [a for a in self.answers if a.status != 200]

    def first_from(self, release: str) -> Answer | None:
        return next((a for a in self.answers if a.release == release), None)


def serve(root: Path, env: dict[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
    current = root / "current"
    output = log.open("ab") if log else None
    return subprocess.Popen(
        [str(current / ".venv" / "bin" / "python"), str(current / "manage.py"), "serve"],
        cwd=current,
        env={k: v for k, v in env.items() if k != "PYTHONPATH"},
        stdout=output,
        stderr=subprocess.STDOUT if output else None,
        start_new_session=True,
    )


def stop_serve(proc: subprocess.Popen[bytes], timeout: float = 60) -> int | None:
    """SIGTERM serve; its exit status (None: it did not stop in time). Whatever is left in its
    session afterwards (a master that took over, a job cluster) is killed."""
    proc.send_signal(signal.SIGTERM)
    try:
        code: int | None = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        code = None
    for pid in session_members(proc.pid):
        subprocess.run(["kill", "-9", str(pid)], check=False)
    if code is None:
        proc.wait(timeout=10)
    return code


def session_members(session: int) -> list[int]:
    members = []
    for process in Path("/proc").iterdir():
        try:
            fields = (process / "stat").read_text().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if process.name.isdigit() and int(fields[3]) == session and running(int(process.name)):
            members.append(int(process.name))
    return members
