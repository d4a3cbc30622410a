"""Run the service: migrate, collect static files when they are missing or stale, then the web
server, the job cluster, or both.

`SIGNALSERVER_ROLE=all` (the default) supervises Gunicorn and `qcluster` in one process
group for single-container hosts: SIGTERM/SIGINT are forwarded to both, and when either
exits the other is stopped and the exit status passed on.
"""

from __future__ import annotations

import json
import os
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

# collectstatic's default ignore patterns
STATIC_IGNORE = ["CVS", ".*", "*~"]


def web_argv() -> list[str]:
    return [sys.executable, "-m", "gunicorn", "-c", str(settings.BASE_DIR / "gunicorn.conf.py"), "signalserver.wsgi"]


def worker_argv() -> list[str]:
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


def collect_static_files(stdout: Any) -> None:
    problem = static_files_problem()
    if not problem:
        return
    stdout.write(f"Static files are out of date ({problem}): collecting them into {settings.STATIC_ROOT}\n")
    try:
        call_command("collectstatic", interactive=False, verbosity=0)
    except OSError as e:
        raise CommandError(
            f"static files are out of date ({problem}) and cannot be collected into {settings.STATIC_ROOT}: {e}. "
            "Run `python manage.py collectstatic --noinput` as a user who may write there, then start again."
        ) from None


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
        argvs = {"web": [web_argv()], "worker": [worker_argv()], "all": [web_argv()]}[role]
        if role == "all" and settings.ENABLE_BACKGROUND_TASKS:
            argvs.append(worker_argv())
        if role != "worker":
            self.stdout.write(
                f"signalserver is starting on http://127.0.0.1:{settings.PORT}/ "
                f"(role={role}, background tasks={'on' if len(argvs) > 1 or role == 'worker' else 'off'})\n"
                f"Create an admin user with: {sys.executable} manage.py createsuperuser\n"
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
