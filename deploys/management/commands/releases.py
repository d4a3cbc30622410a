"""List the releases kept under RELEASES_DIR, the current one marked with *."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from deploys.releases import Layout, ReleaseError


class Command(BaseCommand):
    help = "List the releases under RELEASES_DIR (current marked with *)."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            layout = Layout.configured()
        except ReleaseError as e:
            raise CommandError(str(e)) from None
        current = layout.current_number()
        numbers = layout.numbers()
        if not numbers:
            self.stdout.write(f"No release in {layout.releases}")
        for number in reversed(numbers):
            meta = layout.meta(number)
            commit = str(meta.get("commit") or "")[:12]
            line = f"{'*' if number == current else ' '} {number:>4}  {str(meta.get('created', ''))[:19]:19}  "
            line += f"{meta.get('status', '')!s:12} {commit:12} {meta.get('source', '')}"
            self.stdout.write(line.rstrip())
