"""Import the original app's webhook_links.json into the StoredLink history."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from delivery.models import StoredLink
from delivery.r2 import normalize_url


def _created(value: object) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


class Command(BaseCommand):
    help = "Import webhook_links.json (a JSON array of {source_url, r2_url, provider, created_at, original_filename})."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        try:
            entries = json.loads(file.read_text())
        except (OSError, ValueError) as e:
            raise CommandError(f"Cannot read {file}: {e}") from None
        if not isinstance(entries, list):
            raise CommandError(f"{file} must hold a JSON array")
        imported = skipped = 0
        with transaction.atomic():
            for entry in entries:
                if not (isinstance(entry, dict) and entry.get("source_url") and entry.get("r2_url")):
                    skipped += 1
                    continue
                provider = str(entry.get("provider") or "unknown")
                defaults: dict[str, Any] = {"original_filename": str(entry.get("original_filename") or "")}
                created = _created(entry.get("created_at"))
                if created:
                    defaults["created"] = created
                _, new = StoredLink.objects.get_or_create(
                    source_url=normalize_url(str(entry["source_url"]), provider),
                    r2_url=str(entry["r2_url"]),
                    provider=provider,
                    defaults=defaults,
                )
                imported += new
                skipped += not new
        self.stdout.write(f"Imported {imported} link(s); skipped {skipped} (duplicates or incomplete entries).")
