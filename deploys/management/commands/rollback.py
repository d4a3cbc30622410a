"""Make an earlier release current again (default: the one before the current one)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from deploys.management.commands.release import actor
from deploys.releases import Layout, ReleaseError, Releaser


class Command(BaseCommand):
    help = "Switch current back to release N (default: the previous one) and hand Gunicorn over to it."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("number", nargs="?", type=int, help="Release number (see `manage.py releases`).")

    def handle(self, *args: Any, number: int | None, **options: Any) -> None:
        try:
            layout = Layout.configured()
            with layout.locked():
                deployment = Releaser(actor(f"rollback {number or ''}".strip())).rollback(number)
        except ReleaseError as e:
            raise CommandError(str(e)) from None
        self.stdout.write(deployment.output)
        if deployment.status != "succeeded":
            raise CommandError(f"rollback: {deployment.get_status_display().lower()}")
