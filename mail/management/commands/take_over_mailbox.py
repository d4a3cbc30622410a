"""`python manage.py take_over_mailbox [NAME] [--force]`: start polling where the original stopped."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mail import imap
from mail.models import Mailbox
from mail.takeover import TakeOverRefused, take_over


class Command(BaseCommand):
    help = (
        "Position a mailbox after its last read message, so the first poll records only the mail that arrived"
        " after the original app's last cycle (run it before the job cluster starts)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", nargs="?", help="the mailbox (default: the only one)")
        parser.add_argument("--force", action="store_true", help="also when the mailbox was already polled")

    def handle(self, *args: Any, **options: Any) -> None:
        mailbox = self.mailbox(options["name"])
        try:
            result = take_over(mailbox, options["force"])
        except TakeOverRefused as e:
            raise CommandError(str(e)) from None
        except imap.IMAP_ERRORS as e:
            raise CommandError(f"cannot read {mailbox}: {imap.explain(e, mailbox)}") from None
        self.stdout.write(
            f"{mailbox}: {result.history} message(s) up to UID {result.last_read_uid} are history and will not be"
            f" processed; the first poll records the {result.to_process} unread message(s) after it."
        )

    def mailbox(self, name: str | None) -> Mailbox:
        boxes = Mailbox.objects.order_by("pk")
        found = list(boxes.filter(name=name) if name else boxes[:2])
        if len(found) == 1:
            return found[0]
        raise CommandError(f"no mailbox named {name!r}" if name else "name the mailbox (there is none, or several)")
