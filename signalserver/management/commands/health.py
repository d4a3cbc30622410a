"""Print the /health checks and exit 0 when all pass, 1 otherwise (for container healthchecks)."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand

from signalserver.health import run_checks


class Command(BaseCommand):
    help = "Run the health checks of /health from the command line."

    def handle(self, *args: Any, **options: Any) -> None:
        ok, body = run_checks()
        self.stdout.write(json.dumps(body, indent=2))
        if not ok:
            sys.exit(1)
