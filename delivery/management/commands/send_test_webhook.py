"""Send (or show) a signed test webhook to an endpoint."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from delivery import http, signing
from delivery.models import Endpoint

TEST_PAYLOAD = {
    "microsoft_graph_email_id": "test-webhook",
    "subject": "Média Solution - Missions Recadrage - Lot 0 (test)",
    "receivedDateTime": "",
    "sender_address": "signalserver test <test@signalserver.invalid>",
    "sender_email": "test@signalserver.invalid",
    "bodyPreview": "Test webhook from signalserver",
    "email_content": "Test webhook from signalserver",
    "detector": "recadrage",
    "delivery_time": "09h00",
    "webhooks_time_start": "maintenant",
    "delivery_links": [{"provider": "dropbox", "raw_url": "https://www.dropbox.com/scl/fo/test/test?rlkey=test&dl=0"}],
}


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
        body = json.dumps(TEST_PAYLOAD, ensure_ascii=False).encode()
        headers = signing.headers(str(target.secret), f"msg_test_{int(time.time())}", int(time.time()), body)
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
