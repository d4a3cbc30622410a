"""Taking over a mailbox from the original app without sending its history again.

A new mailbox's first poll records every message in the folder. For a mailbox the original
polled, what it left read it had handled (it fetched every unread message and so flagged it
read): taking over sets the mailbox's position after the last read message, so the first
poll records only the mail that arrived after the original's last cycle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mail import imap, lease
from mail.models import Mailbox

logger = logging.getLogger(__name__)


class TakeOverRefused(Exception):
    pass


@dataclass(frozen=True)
class TakeOver:
    uidvalidity: int
    last_read_uid: int
    history: int  # messages at or below it, not processed
    to_process: int  # unread messages above it, for the first poll


def take_over(mailbox: Mailbox, force: bool = False) -> TakeOver:
    """Position `mailbox` after its last read message. Refused once it was polled, unless `force`."""
    polling = lease.holder(mailbox.lease_name)
    if polling:
        raise TakeOverRefused(f"{mailbox} is being polled by {polling}: stop the job cluster first")
    if mailbox.uidvalidity is not None and not force:
        raise TakeOverRefused(f"{mailbox} was already polled (up to UID {mailbox.last_uid}); --force moves it anyway")
    with imap.connect(mailbox) as client:
        info = client.select_folder(mailbox.folder, readonly=True)
        uidvalidity = int(info[b"UIDVALIDITY"])
        every = client.search(["ALL"])
        last_read = max(client.search(["SEEN"]), default=0)
    mailbox.save_position(uidvalidity, last_read)
    result = TakeOver(uidvalidity, last_read, sum(u <= last_read for u in every), sum(u > last_read for u in every))
    logger.info(
        "POLLER: %s taken over: %d message(s) up to UID %d are history; %d to process",
        mailbox,
        result.history,
        last_read,
        result.to_process,
    )
    return result
