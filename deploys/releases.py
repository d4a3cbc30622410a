"""Self-hosted releases (the deployment notes' zero-downtime scheme), under RELEASES_DIR:

    releases/<N>/     the code of release N; .venv links to its virtualenv
    venvs/<hash>/     one virtualenv per requirements.txt content, shared by releases
    current           symlink to releases/<N>, switched by an atomic rename
    gunicorn.pid      the running Gunicorn master (gunicorn.conf.py writes it)

A release is built, installed, has its static files collected and migrations applied while
the previous one serves. Then `current` is switched and Gunicorn upgraded in place: USR2
starts a new master from `current` next to the old one (both accept on the same socket, so
no request is refused); once the new code answers /health, the old master is stopped
gracefully (its requests finish). If the new master dies or /health does not answer 200
within the deadline, `current` goes back and the new master is stopped: the old one never
stopped serving.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import urllib3
from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone

from deploys import local
from deploys.local import alive
from deploys.models import Deployment

COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "var", "staticfiles", "test-artifacts", "__pycache__", "*.pyc", ".*_cache", "node_modules"
)
INSTALL_TIMEOUT_SECONDS = 1800
MANAGE_TIMEOUT_SECONDS = 600
HEALTHY_ANSWERS = 3  # consecutive 200s from the new release
GIT = shutil.which("git") or "/usr/bin/git"

Log = Callable[[str], None]


class ReleaseError(Exception):
    pass


@dataclass(frozen=True)
class Layout:
    root: Path

    @classmethod
    def configured(cls) -> Layout:
        if not settings.RELEASES_DIR:
            raise ReleaseError("RELEASES_DIR is not set: it names the directory that holds releases/ and current")
        return cls(Path(settings.RELEASES_DIR).absolute())

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def venvs(self) -> Path:
        return self.root / "venvs"

    @property
    def current(self) -> Path:
        return self.root / "current"

    def release(self, number: int) -> Path:
        return self.releases / str(number)

    def numbers(self) -> list[int]:
        if not self.releases.is_dir():
            return []
        return sorted(int(p.name) for p in self.releases.iterdir() if p.name.isdigit() and p.is_dir())

    def current_number(self) -> int | None:
        try:
            target = os.readlink(self.current)
        except OSError:
            return None
        name = Path(target).name
        return int(name) if name.isdigit() else None

    def meta(self, number: int) -> dict[str, object]:
        try:
            data = json.loads((self.release(number) / ".release.json").read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def write_meta(self, number: int, **values: object) -> None:
        path = self.release(number) / ".release.json"
        path.write_text(json.dumps({**self.meta(number), **values}, indent=2))

    def switch(self, number: int | None) -> None:
        """Point `current` at releases/<number> atomically (a new link renamed over the old)."""
        if number is None:
            self.current.unlink(missing_ok=True)
            return
        temporary = self.root / f".current-{os.getpid()}"
        temporary.unlink(missing_ok=True)
        os.symlink(f"releases/{number}", temporary)
        os.replace(temporary, self.current)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ReleaseError("another release or rollback is running in this directory") from None
            yield


def clean_env() -> dict[str, str]:
    """This process's environment for the release's own processes, without a PYTHONPATH that
    would make them import other code than their own."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def checked(argv: list[str], log: Log, timeout: float, cwd: Path | None = None, show: str = "") -> str:
    log(show or "$ " + " ".join(argv))
    result = local.run(argv, timeout, cwd=cwd, env=clean_env())
    if not result.ok:
        raise ReleaseError(f"{argv[0]} {local.describe(result, timeout)}:\n{result.output.strip()}")
    return result.output


def fetch_source(source: str, dest: Path, repository: str, log: Log) -> str:
    """Copy a directory, or export a git ref of `repository`, into `dest`; returns the commit."""
    path = Path(source)
    if path.is_dir():
        log(f"Copying {path.absolute()}")
        shutil.copytree(path, dest, ignore=COPY_IGNORE, symlinks=True)
        head = local.run([GIT, "-C", str(path), "rev-parse", "HEAD"], 30)
        return head.output.strip() if head.ok else ""
    if not repository or not Path(repository).exists():
        raise ReleaseError(f"{source} is not a directory, and there is no git repository to find it in ({repository})")
    commit = checked([GIT, "-C", repository, "rev-parse", "--verify", f"{source}^{{commit}}"], log, 60).strip()
    log(f"Exporting {source} ({commit[:12]}) from {repository}")
    archive = subprocess.run(
        [GIT, "-C", repository, "archive", "--format=tar", commit], capture_output=True, timeout=300, check=True
    ).stdout
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return commit


def install(layout: Layout, release: Path, log: Log) -> str:
    """The virtualenv for this release's requirements.txt, made once per content and linked as .venv."""
    requirements = release / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16] if requirements.exists() else "none"
    venv = layout.venvs / digest
    if not (venv / ".complete").exists():
        shutil.rmtree(venv, ignore_errors=True)
        layout.venvs.mkdir(parents=True, exist_ok=True)
        checked([sys.executable, "-m", "venv", str(venv)], log, 300)
        if requirements.exists():
            pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            checked([*pip, "-r", str(requirements)], log, INSTALL_TIMEOUT_SECONDS)
        (venv / ".complete").touch()
    else:
        log(f"Requirements unchanged: using the virtualenv venvs/{digest}")
    (release / ".venv").symlink_to(Path("..", "..", "venvs", digest))
    return digest


def manage(release: Path, args: list[str], log: Log) -> str:
    argv = [str(release / ".venv" / "bin" / "python"), str(release / "manage.py"), *args]
    return checked(argv, log, MANAGE_TIMEOUT_SECONDS, cwd=release, show=f"$ manage.py {' '.join(args)}")


def prune(layout: Layout, keep: int, log: Log) -> None:
    """Keep the newest `keep` releases (and always the current one); drop virtualenvs no release uses."""
    current = layout.current_number()
    for number in layout.numbers()[:-keep]:
        if number != current:
            shutil.rmtree(layout.release(number))
            log(f"Removed release {number}")
    used = {os.readlink(layout.release(n) / ".venv").rsplit("/", 1)[-1] for n in layout.numbers()}
    if layout.venvs.is_dir():
        for venv in layout.venvs.iterdir():
            if venv.name not in used:
                shutil.rmtree(venv, ignore_errors=True)


def read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def wait_for(condition: Callable[[], object], deadline: float, step: float = 0.1) -> bool:
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return bool(condition())


def answered_by(number: int, log: Log, deadline: float, new_master: int) -> bool:
    """HEALTHY_ANSWERS consecutive 200s from release `number` at RELEASE_HEALTH_URL; False if it
    answers anything else, its master dies, or the deadline passes. Old workers may answer too
    (they share the socket): their answers are not counted."""
    pool = urllib3.PoolManager(retries=False)
    healthy = 0
    while time.monotonic() < deadline and healthy < HEALTHY_ANSWERS:
        if not alive(new_master):
            log("The new Gunicorn master stopped (the new code failed to start)")
            return False
        try:
            response = pool.request("GET", settings.RELEASE_HEALTH_URL, timeout=5, headers={"Connection": "close"})
        except urllib3.exceptions.HTTPError as e:
            log(f"Health check: {type(e).__name__}")
            time.sleep(0.2)
            continue
        if response.headers.get("X-Release") != str(number):
            time.sleep(0.05)
            continue
        if response.status != 200:
            text = response.data[:300].decode("utf-8", "replace")
            log(f"Health check of release {number}: HTTP {response.status} {text}")
            return False
        healthy += 1
    return healthy >= HEALTHY_ANSWERS


def upgrade_gunicorn(number: int, log: Log) -> bool | None:
    """Hand the serving over to release `number` (see the module docstring). None: no Gunicorn runs."""
    pidfile = Path(settings.GUNICORN_PIDFILE)
    old = read_pid(pidfile) if settings.GUNICORN_PIDFILE else None
    if old is None:
        log(f"No running Gunicorn master in {pidfile}: start it from {Layout.configured().current}")
        return None
    deadline = time.monotonic() + settings.RELEASE_HEALTH_TIMEOUT_SECONDS
    successor = Path(f"{pidfile}.2")
    successor.unlink(missing_ok=True)
    log(f"Gunicorn master {old}: USR2 (start a new master from current)")
    os.kill(old, signal.SIGUSR2)
    if not wait_for(lambda: read_pid(successor), deadline):
        log("No new Gunicorn master started")
        return False
    new = read_pid(successor)
    if new is None or not answered_by(number, log, deadline, new):
        if new is not None and alive(new):
            stop(new, log)
        return False
    log(f"Release {number} answers /health: stopping the old master {old} gracefully")
    stop(old, log)
    wait_for(lambda: read_pid(pidfile) == new, time.monotonic() + 10)
    return True


def stop(pid: int, log: Log) -> None:
    os.kill(pid, signal.SIGTERM)
    if not wait_for(lambda: not alive(pid), time.monotonic() + 60, 0.2):
        log(f"Gunicorn master {pid} did not stop within 60 s")


class Releaser:
    """One `release` or `rollback` run, recorded as a Deployment."""

    def __init__(self, actor: str) -> None:
        self.layout = Layout.configured()
        self.deployment = Deployment(
            triggered_by="cli",
            actor=actor[:200],
            requested_method="release",
            method="release",
            status="running",
            started=timezone.now(),
        )
        self.record()

    def record(self) -> None:
        """Save the row; on a database not migrated yet, once the release's migrations ran."""
        if self.deployment.pk is None:
            try:
                self.deployment.save()
            except DatabaseError:
                pass  # no deploys table yet: the first release's migrate makes it, then record() again

    def log(self, line: str) -> None:
        self.deployment.log(line)

    def release(self, source: str, repository: str) -> Deployment:
        layout = self.layout
        number = max(layout.numbers(), default=0) + 1
        self.deployment.release = number
        path = layout.release(number)
        try:
            layout.releases.mkdir(parents=True, exist_ok=True)
            commit = fetch_source(source, path, repository, self.log)
            layout.write_meta(number, source=source, commit=commit, created=timezone.now().isoformat())
            install(layout, path, self.log)
            manage(path, ["collectstatic", "--noinput", "-v0"], self.log)
            manage(path, ["migrate", "--noinput"], self.log)
            self.record()
        except (ReleaseError, OSError, subprocess.SubprocessError) as e:
            if path.exists():
                layout.write_meta(number, status="failed")
            self.deployment.finish("failed", f"Release {number} not built: {e}")
            return self.deployment
        return self.go_live(number, previous=layout.current_number())

    def rollback(self, number: int | None) -> Deployment:
        current = self.layout.current_number()
        older = [n for n in self.layout.numbers() if current is None or n < current]
        target = number if number is not None else (older[-1] if older else None)
        if target is None or target not in self.layout.numbers():
            self.deployment.finish(
                "failed", f"No release {target if target else 'before the current one'} to go back to"
            )
            return self.deployment
        self.deployment.release = target
        return self.go_live(target, previous=current)

    def go_live(self, number: int, previous: int | None) -> Deployment:
        self.layout.switch(number)
        self.log(f"current -> releases/{number} (was {previous if previous else 'none'})")
        outcome = upgrade_gunicorn(number, self.log)
        if outcome is False:
            self.layout.switch(previous)
            self.layout.write_meta(number, status="rolled back")
            self.deployment.finish("rolled_back", f"Rolled back: current -> releases/{previous}, still serving")
            return self.deployment
        self.layout.write_meta(number, status="live", live_since=timezone.now().isoformat())
        self.restart_worker()
        prune(self.layout, settings.RELEASES_KEPT, self.log)
        self.deployment.finish("succeeded", f"Release {number} is live")
        return self.deployment

    def restart_worker(self) -> None:
        """The job cluster runs the old code until restarted: `serve` restarts it on SIGHUP."""
        for pidfile in self.layout.root.glob("serve-*.pid"):
            pid = read_pid(pidfile)
            if pid is not None:
                os.kill(pid, signal.SIGHUP)
                self.log(f"Asked serve ({pidfile.name}, pid {pid}) to restart the job cluster")
        if settings.RELEASE_RESTART_WORKER_CMD:
            try:
                checked(settings.RELEASE_RESTART_WORKER_CMD, self.log, 120)
            except ReleaseError as e:
                self.log(f"The job cluster was not restarted: {e}")
