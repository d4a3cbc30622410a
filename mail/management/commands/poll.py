"""Run the mailbox poller in the foreground (the same code as the scheduled job)."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connections
from django.utils import timezone

from mail import imap
from mail.lease import holder
from mail.models import Mailbox
from mail.poller import run_once, run_session


class Command(BaseCommand):
    help = "Poll the enabled mailboxes: fetch new mail, then wait with IMAP IDLE. SIGTERM stops cleanly."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true", help="Run one cycle per mailbox, then exit.")
        parser.add_argument("--now", action="store_true", help="Ignore active days, hours and vacation.")
        parser.add_argument("--mailbox", help="Only this mailbox (its name).")

    def handle(self, *args: Any, once: bool, now: bool, mailbox: str | None, **options: Any) -> None:
        self.stop = threading.Event()
        mailboxes = list(Mailbox.objects.filter(enabled=True))
        if mailbox:
            mailboxes = [m for m in mailboxes if m.name == mailbox]
            if not mailboxes:
                raise CommandError(f"No enabled mailbox named {mailbox!r}")
        if not mailboxes:
            raise CommandError("No enabled mailbox: add one in the admin (or set EMAIL_ADDRESS and IMAP_SERVER)")
        if once:
            for box in mailboxes:
                self.run_once(box, now)
            return
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        threads = [threading.Thread(target=self.serve_forever, args=(box, now), name=box.name) for box in mailboxes]
        for thread in threads:
            thread.start()
        while any(t.is_alive() for t in threads):
            for thread in threads:
                thread.join(timeout=0.5)
        self.stdout.write("Poller stopped.")

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stdout.write(f"Received signal {signum}: finishing the current message, then stopping.")
        self.stop.set()

    def run_once(self, box: Mailbox, ignore_schedule: bool) -> None:
        if not ignore_schedule and not box.is_active(timezone.now()):
            self.stdout.write(f"{box}: outside its active period (use --now to poll anyway)")
            return
        try:
            created = run_once(box, self.stop, ignore_schedule=ignore_schedule)
        except imap.IMAP_ERRORS as e:
            raise CommandError(f"{box}: {imap.explain(e, box)} ({imap.technical(e)})") from e
        if created is None:
            self.stdout.write(f"{box}: another poller holds the lease ({holder(box.lease_name)}); skipped")
            return
        self.stdout.write(f"{box}: {created} new email(s)")

    def serve_forever(self, box: Mailbox, ignore_schedule: bool) -> None:
        try:
            while not self.stop.is_set():
                run_session(box, self.stop, wait_for_lease=float("inf"), ignore_schedule=ignore_schedule)
                if not Mailbox.objects.filter(pk=box.pk, enabled=True).exists():
                    return
        finally:
            connections.close_all()
