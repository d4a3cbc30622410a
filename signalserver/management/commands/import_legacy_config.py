"""`python manage.py import_legacy_config --from-dir debug/ | --from-redis URL [--dry-run] [--verify]`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from signalserver.legacy import sources
from signalserver.legacy.importer import Report, import_documents


class Command(BaseCommand):
    help = (
        "Import the original app's configuration documents (webhook_config, polling_config, processing_prefs,"
        " runtime_flags, routing_rules) from its debug/ directory or its Redis store into signalserver's settings."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--from-dir", type=Path, metavar="DIR", help="the original's debug/ directory")
        source.add_argument("--from-redis", metavar="URL", help="the original's REDIS_URL")
        parser.add_argument(
            "--prefix",
            default=settings.LEGACY_CONFIG_REDIS_PREFIX,
            help="key prefix of the documents in Redis (default: %(default)s, or CONFIG_STORE_REDIS_PREFIX)",
        )
        parser.add_argument("--mailbox", metavar="NAME", help="the mailbox polling_config belongs to")
        parser.add_argument("--dry-run", action="store_true", help="print what would change, write nothing")
        parser.add_argument(
            "--verify", action="store_true", help="read both sides again afterwards; exit 1 on any difference"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        source = self.read(options)
        found = ", ".join(source.documents) or "no configuration document"
        self.stdout.write(f"Reading {source.label}: {found}")
        report = import_documents(source.documents, options["mailbox"], options["dry_run"])
        self.show_changes(report, options["dry_run"])
        self.show_not_carried(source, report)
        if options["verify"]:
            self.verify(options)

    def read(self, options: dict[str, Any]) -> sources.Source:
        try:
            if options["from_dir"] is not None:
                return sources.read_dir(options["from_dir"])
            return sources.read_redis(options["from_redis"], options["prefix"])
        except sources.SourceError as e:
            raise CommandError(str(e), returncode=2) from None

    def show_changes(self, report: Report, dry_run: bool) -> None:
        count = len(report.changes)
        if not count:
            self.stdout.write(self.style.SUCCESS("No changes: the settings already match the documents."))
            return
        self.stdout.write("Would change:" if dry_run else "Changed:")
        for change in report.changes:
            self.stdout.write(f"  {change}")
        if dry_run:
            self.stdout.write(self.style.WARNING(f"Dry run: {count} change(s) would be made; nothing was written."))
        else:
            self.stdout.write(self.style.SUCCESS(f"{count} change(s) made."))

    def show_not_carried(self, source: sources.Source, report: Report) -> None:
        lines = source.problems + report.not_carried + source.unread
        if lines:
            self.stdout.write(f"Not carried over ({len(lines)}):")
            for line in lines:
                self.stdout.write(f"  - {line}")
        if report.notes:
            self.stdout.write("Worth knowing:")
            for line in report.notes:
                self.stdout.write(f"  - {line}")

    def verify(self, options: dict[str, Any]) -> None:
        """Read the documents and the rows again; any setting that still differs is a failure."""
        differences = import_documents(self.read(options).documents, options["mailbox"], dry_run=True).changes
        if differences:
            for change in differences:
                self.stdout.write(f"  differs: {change}")
            raise CommandError(f"Verify failed: {len(differences)} difference(s) remain", returncode=1)
        self.stdout.write(self.style.SUCCESS("Verify: OK, every imported setting matches the documents."))
