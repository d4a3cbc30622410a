"""Build releases/<N> from a directory or a git ref, switch `current`, and hand Gunicorn over to it."""

from __future__ import annotations

import getpass
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from deploys import local
from deploys.releases import GIT, Layout, ReleaseError, Releaser


def actor(command: str) -> str:
    return f"{getpass.getuser()}@{settings.HOSTNAME}: manage.py {command}"


class Command(BaseCommand):
    help = "Build a release from SOURCE (a directory or a git ref), make it current, roll back if unhealthy."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("source", help="A directory, or a git ref (branch, tag, commit) of --repository.")
        parser.add_argument("--repository", default=None, help="Git repository for refs (default RELEASE_REPOSITORY).")
        parser.add_argument("--fetch", action="store_true", help="git fetch in the repository first.")

    def handle(self, *args: Any, source: str, repository: str | None, fetch: bool, **options: Any) -> None:
        repository = repository or settings.RELEASE_REPOSITORY
        try:
            layout = Layout.configured()
            with layout.locked():
                if fetch:
                    fetch_repository(repository)
                deployment = Releaser(actor(f"release {source}")).release(source, repository)
        except ReleaseError as e:
            raise CommandError(str(e)) from None
        self.stdout.write(deployment.output)
        if deployment.status != "succeeded":
            raise CommandError(f"release {deployment.release}: {deployment.get_status_display().lower()}")


def fetch_repository(repository: str) -> None:
    result = local.run([GIT, "-C", repository, "fetch", "--prune", "--tags"], 300)
    if not result.ok:
        raise ReleaseError(f"git fetch in {repository} {local.describe(result, 300)}: {result.output.strip()}")
