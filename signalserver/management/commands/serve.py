"""Run the service: migrate, then the web server, the job cluster, or both.

`SIGNALSERVER_ROLE=all` (the default) supervises Gunicorn and `qcluster` in one process
group for single-container hosts: SIGTERM/SIGINT are forwarded to both, and when either
exits the other is stopped and the exit status passed on.
"""

from __future__ import annotations

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
from django.core.management import call_command
from django.core.management.base import BaseCommand


def web_argv() -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", str(settings.BASE_DIR / "gunicorn.conf.py"), "signalserver.wsgi"]


def worker_argv() -> list[str]:
    return [sys.executable, str(settings.BASE_DIR / "manage.py"), "qcluster"]


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
        argvs = {"web": [web_argv()], "worker": [worker_argv()], "all": [web_argv()]}[role]
        if role == "all" and settings.ENABLE_BACKGROUND_TASKS:
            argvs.append(worker_argv())
        if role != "worker":
            self.stdout.write(
                f"signalserver is starting on http://127.0.0.1:{settings.PORT}/ "
                f"(role={role}, background tasks={'on' if len(argvs) > 1 or role == 'worker' else 'off'})\n"
                + createsuperuser_hint()
            )
        self.stdout.flush()
        if len(argvs) == 1:
            os.execv(argvs[0][0], argvs[0])  # noqa: S606 (replace this process, no shell)
        sys.exit(self.supervise(argvs))

    def supervise(self, argvs: list[list[str]]) -> int:
        # Children get their own process group, so a terminal's Ctrl-C reaches them only
        # through `stop`, once: a second SIGTERM makes qcluster hang while it stops.
        children = [subprocess.Popen(argv, process_group=0) for argv in argvs]
        stopping: set[int] = set()

        def stop(signum: int, frame: FrameType | None) -> None:
            for child in children:
                if child.poll() is None and child.pid not in stopping:
                    stopping.add(child.pid)
                    child.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        while all(child.poll() is None for child in children):
            time.sleep(0.2)
        first = next(child for child in children if child.returncode is not None)
        stop(signal.SIGTERM, None)
        for child in children:
            child.wait()
        return first.returncode if first.returncode >= 0 else 128 - first.returncode
