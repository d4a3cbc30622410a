"""Send (or show) a signed test webhook to an endpoint."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from delivery import http
from delivery.models import Endpoint
from delivery.sender import test_request


class Command(BaseCommand):
    help = "Send a signed test webhook to ENDPOINT (its name or id); --dry-run prints the request only."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("endpoint")
        parser.add_argument("--dry-run", action="store_true")

    def handle(self, *args: Any, endpoint: str, dry_run: bool, **options: Any) -> None:
        target = Endpoint.objects.filter(name=endpoint).first() or (
            Endpoint.objects.filter(pk=int(endpoint)).first() if endpoint.isdigit() else None
        )
        if target is None:
            raise CommandError(f"No endpoint named {endpoint!r}")
        body, headers = test_request(target)
        self.stdout.write(f"POST {target.url}")
        for name, value in headers.items():
            self.stdout.write(f"{name}: {value}")
        self.stdout.write("")
        self.stdout.write(body.decode())
        if dry_run:
            return
        try:
            response = http.post(target.url, body, headers, target.timeout_seconds)
        except http.HttpError as e:
            raise CommandError(f"Not sent: {e.message}") from None
        self.stdout.write(f"\n→ HTTP {response.status_code} in {response.duration_ms} ms")
        self.stdout.write(response.body[:500].decode("utf-8", "replace"))
