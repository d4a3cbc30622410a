"""A backlog parsed on the machine's other core.

The poller's interpreter runs one thread at a time: reading a backlog, fetching, parsing and
writing share one core, and parsing (with the rules that need only the message) is about half
of it. A backlog of more than PARSE_APART_ABOVE messages is therefore parsed in a child
process while the poller fetches the next batch and writes the one before; mail arriving
during the sync is parsed in the poller and written at once, ahead of the backlog batch still
in the child (as it goes ahead of the rest of the backlog); the backlog is written in order.

The child gets each batch's raw bytes and the mailbox's rules (not its password), and sends
back the unsaved Email rows, in order; the raw bytes stay in the poller. When the child cannot
be used (a daemonic job worker may not start one), dies or fails, batches are parsed in the
poller, and the poller says so in its log. Nothing is lost either way: a batch is only recorded from
what the poller holds.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

import django

if TYPE_CHECKING:
    from mail.models import Email, Mailbox
    from mail.pipeline import Fetched

# This module is imported by the child before Django is set up (it names the child's start
# and its work): the models and the pipeline are imported where they are used.

logger = logging.getLogger(__name__)

PARSE_APART_ABOVE = 400
# What the rules applied while parsing (pipeline.examine) read of a mailbox.
RULE_FIELDS = ("allowed_senders", "timezone", "subject_group_dedup", "subject_group_monthly")
# A batch this large is one large message: parsed here, not copied to the child first.
APART_MAX_BYTES = 8 * 1024 * 1024


def _child_setup() -> None:
    """The child's start: Ctrl-C, sent to the whole process group, is the poller's to handle
    (it finishes the current batch); the child only parses what it is given."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    django.setup()


def parse_rows(rules: Mailbox, uidvalidity: int | None, items: Sequence[Fetched]) -> list[Email]:
    """In the child: the batch's Email rows, one per item, in order."""
    from mail.pipeline import parse_batch

    return [email for email, _ in parse_batch(rules, uidvalidity, items)]


class Parsing:
    """Where a sync's batches are parsed: in a child process, or here."""

    def __init__(self, mailbox: Mailbox, backlog: int) -> None:
        self.mailbox = mailbox
        # The child needs the mailbox's rules, not its account.
        from mail.models import Mailbox

        rules = {field: getattr(mailbox, field) for field in RULE_FIELDS}
        self._rules = Mailbox(pk=mailbox.pk, name=mailbox.name, **rules)
        self._pool: ProcessPoolExecutor | None = None
        if backlog > PARSE_APART_ABOVE:
            self._pool = self._start()
            where = "in a parser process" if self._pool else "here (a job worker may not start a process)"
            logger.info("POLLER: a backlog of %d messages in %s: parsed %s", backlog, mailbox, where)

    @property
    def depth(self) -> int:
        """How many fetched batches wait for their parse before the oldest is written."""
        return 1 if self._pool is not None else 0

    def _start(self) -> ProcessPoolExecutor | None:
        if multiprocessing.current_process().daemon:
            return None  # a daemonic process (a job cluster worker) may not have children
        # Spawned, never forked: the poller has threads, and a fork copies their locks.
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(1, mp_context=context, initializer=_child_setup)

    def submit(self, uidvalidity: int | None, items: list[Fetched]) -> Future[list[Email]] | None:
        if self._pool is None or sum(len(item.raw) for item in items) > APART_MAX_BYTES:
            return None
        try:
            return self._pool.submit(parse_rows, self._rules, uidvalidity, items)
        except (BrokenProcessPool, RuntimeError) as e:
            self._lost(e)
            return None

    def result(
        self, parsing: Future[list[Email]] | None, uidvalidity: int | None, items: list[Fetched]
    ) -> list[tuple[Email, Fetched]]:
        """The batch's rows: those the child parsed, or parsed here."""
        if parsing is not None:
            try:
                emails = parsing.result()
            except Exception as e:  # whatever failed in the child, this batch is parsed here
                self._lost(e)
            else:
                for email in emails:
                    email.mailbox = self.mailbox
                return list(zip(emails, items, strict=True))
        from mail.pipeline import parse_batch

        return parse_batch(self.mailbox, uidvalidity, items)

    def _lost(self, error: Exception) -> None:
        if self._pool is not None:  # once: the batches that were waiting on it fail alike
            logger.warning("POLLER: the parser process stopped (%s); parsing in the poller", error)
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=False, cancel_futures=True)
