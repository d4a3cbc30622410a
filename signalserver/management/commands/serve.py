"""Run the service: migrate, collect static files when they are missing or stale, then the web
server, the job cluster, or both.

`SIGNALSERVER_ROLE=all` (the default) supervises Gunicorn and `qcluster` in one process
group for single-container hosts: SIGTERM/SIGINT are forwarded to both, and when either
exits the other is stopped and the exit status passed on.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from deploys.local import alive
from deploys.releases import read_pid

logger = logging.getLogger(__name__)

WSGI_APP = "signalserver.wsgi"
PR_SET_CHILD_SUBREAPER = 36
# collectstatic's default ignore patterns
STATIC_IGNORE = ["CVS", ".*", "*~"]


def release_current() -> Path | None:
    """RELEASES_DIR/current when the service runs from releases (manage.py release)."""
    return Path(settings.RELEASES_DIR).absolute() / "current" if settings.RELEASES_DIR else None


def web_argv() -> list[str]:
    current = release_current()
    if current:
        # Every path through `current`: a new master started by a release (USR2) runs the
        # new release's code with its own virtualenv.
        bin_dir = current / ".venv" / "bin"
        return [str(bin_dir / "python"), str(bin_dir / "gunicorn"), "-c", str(current / "gunicorn.conf.py"), WSGI_APP]
    return [sys.executable, "-m", "gunicorn", "-c", str(settings.BASE_DIR / "gunicorn.conf.py"), WSGI_APP]


def worker_argv() -> list[str]:
    current = release_current()
    if current:
        return [str(current / ".venv" / "bin" / "python"), str(current / "manage.py"), "qcluster"]
    return [sys.executable, str(settings.BASE_DIR / "manage.py"), "qcluster"]


def static_files_problem() -> str:
    """Why the collected static files do not match this code ('' when they do). In production the
    pages name hashed files from the manifest: a missing entry would be a 500 on every page."""
    if settings.DEBUG:
        return ""
    manifest = Path(settings.STATIC_ROOT) / "staticfiles.json"
    try:
        collected, collected_at = json.loads(manifest.read_text())["paths"], manifest.stat().st_mtime
    except (OSError, ValueError, KeyError, TypeError):
        return f"no manifest at {manifest}"
    for finder in finders.get_finders():
        for path, storage in finder.list(STATIC_IGNORE):
            if path not in collected:
                return f"{path} was never collected"
            if os.stat(storage.path(path)).st_mtime > collected_at:
                return f"{path} changed since it was collected"
    return ""


def announce(stdout: Any, *lines: str) -> None:
    """Tell the person starting the service; in production (JSON logs) as log lines."""
    for line in lines:
        if settings.LOG_FORMAT == "json":
            logger.info("%s", line)
        else:
            stdout.write(line + "\n")


def collect_static_files(stdout: Any) -> None:
    problem = static_files_problem()
    if not problem:
        return
    announce(stdout, f"Static files are out of date ({problem}): collecting them into {settings.STATIC_ROOT}")
    try:
        call_command("collectstatic", interactive=False, verbosity=0)
    except OSError as e:
        raise CommandError(
            f"static files are out of date ({problem}) and cannot be collected into {settings.STATIC_ROOT}: {e}. "
            "Run `python manage.py collectstatic --noinput` as a user who may write there, then start again."
        ) from None


def createsuperuser_hint() -> str:
    """How to create the first admin user, as a command that works when pasted into a shell;
    nothing once a user exists."""
    from django.contrib.auth import get_user_model

    if get_user_model().objects.exists():
        return ""
    env = "DEBUG=true " if settings.DEBUG else ""  # without it, the command asks for SECRET_KEY
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3") and Path(database["NAME"]) != settings.BASE_DIR / "var" / "db.sqlite3":
        env += f"SQLITE_PATH={shlex.quote(str(database['NAME']))} "
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(settings.BASE_DIR / 'manage.py'))} createsuperuser"
    return f"No admin user yet; create one with:\n  {env}{command}\n"


class Command(BaseCommand):
    help = "Migrate, then run the web server and/or the job cluster (SIGNALSERVER_ROLE=web|worker|all)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--skip-migrate", action="store_true", help="Do not run migrations first.")

    def handle(self, *args: Any, skip_migrate: bool, **options: Any) -> None:
        if not skip_migrate:
            call_command("migrate", interactive=False, verbosity=0)
        role = settings.SIGNALSERVER_ROLE
        if role != "worker":
            collect_static_files(self.stdout)
        argvs = {"web": {"web": web_argv()}, "worker": {"worker": worker_argv()}, "all": {"web": web_argv()}}[role]
        if role == "all" and settings.ENABLE_BACKGROUND_TASKS:
            argvs["worker"] = worker_argv()
        if role != "worker":
            announce(
                self.stdout,
                f"signalserver is starting on http://127.0.0.1:{settings.PORT}/ "
                f"(role={role}, background tasks={'on' if len(argvs) > 1 or role == 'worker' else 'off'})",
                *createsuperuser_hint().splitlines(),
            )
        self.stdout.flush()
        current = release_current()
        if len(argvs) == 1 and current is None:
            argv = next(iter(argvs.values()))
            os.execv(argv[0], argv)  # noqa: S606 (replace this process, no shell)
        if current is not None:
            # Gunicorn keeps the path it was started from (PWD) for its successors.
            os.chdir(current)
            os.environ["PWD"] = str(current)
            Path(settings.RELEASES_DIR, f"serve-{role}.pid").write_text(str(os.getpid()))
        sys.exit(Supervisor(argvs).run())


class Adopted:
    """A Gunicorn master that took over from the one we started (a release's USR2 handover).
    As a child subreaper we inherit it when its parent exits, so it can be waited for."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # not ours after all: watch it from outside
                self.returncode = None if alive(self.pid) else 0
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def wait(self) -> int:
        while self.poll() is None:
            time.sleep(0.2)
        return self.returncode or 0


def become_subreaper() -> None:
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def gunicorn_successor(exited: int) -> int | None:
    """The pid of the master that took over from `exited`, when a release handed over to it."""
    if not settings.GUNICORN_PIDFILE:
        return None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        pid = read_pid(Path(settings.GUNICORN_PIDFILE))
        if pid is not None and pid != exited:
            return pid
        time.sleep(0.2)
    return None


class Supervisor:
    """Runs the web server and/or the job cluster; stops all when one stops, passes SIGTERM/SIGINT
    on once. In a release layout it follows Gunicorn's handover to a new master, and SIGHUP
    restarts the job cluster from `current`."""

    def __init__(self, argvs: dict[str, list[str]]) -> None:
        self.argvs = argvs
        self.children: dict[str, subprocess.Popen[bytes] | Adopted] = {}
        self.terminated: set[int] = set()
        self.stopping = False
        self.restart_worker = False

    def start(self, role: str) -> None:
        # Children get their own process group, so a terminal's Ctrl-C reaches them only
        # through `stop`, once: a second SIGTERM makes qcluster hang while it stops.
        self.children[role] = subprocess.Popen(self.argvs[role], process_group=0)

    def terminate(self, child: subprocess.Popen[bytes] | Adopted) -> None:
        # Once per process: a second SIGTERM makes qcluster hang while it stops.
        if child.pid not in self.terminated and child.poll() is None:
            self.terminated.add(child.pid)
            child.send_signal(signal.SIGTERM)

    def stop(self, signum: int = signal.SIGTERM, frame: FrameType | None = None) -> None:
        self.stopping = True
        for child in list(self.children.values()):
            self.terminate(child)

    def hup(self, signum: int, frame: FrameType | None) -> None:
        self.restart_worker = True

    def run(self) -> int:
        if release_current() is not None:
            become_subreaper()
        for role in self.argvs:
            self.start(role)
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        signal.signal(signal.SIGHUP, self.hup)
        while (exited := self.exited()) is None:
            if self.restart_worker and "worker" in self.children:
                self.restart_worker = False
                self.terminate(self.children["worker"])
                self.children["worker"].wait()
                if not self.stopping:
                    self.start("worker")
            time.sleep(0.2)
        self.stop()
        for child in self.children.values():
            child.wait()
        code = exited.returncode or 0
        if code == -signal.SIGTERM and exited.pid in self.terminated:
            return 0  # stopped by us before it could handle the signal (a job cluster still starting)
        return code if code >= 0 else 128 - code

    def exited(self) -> subprocess.Popen[bytes] | Adopted | None:
        for role, child in self.children.items():
            if child.poll() is None:
                continue
            handing_over = role == "web" and not self.stopping and release_current() is not None
            successor = gunicorn_successor(child.pid) if handing_over else None
            if successor is None:
                return child
            self.children["web"] = Adopted(successor)
        return None
