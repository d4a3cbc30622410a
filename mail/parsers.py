"""A backlog parsed on the machine's other core.

The poller's interpreter runs one thread at a time: reading a backlog, fetching, parsing and
writing share one core, and parsing (with the rules that need only the message) is about half
of it. With SQLite, whose work runs in the poller's process too, a backlog of more than
PARSE_APART_ABOVE messages is therefore parsed in a child process while the poller fetches
the next batch and writes the one before (PostgreSQL's own processes use the other core,
and the poller parses there as fast itself, for less CPU); mail arriving
during the sync is parsed in the poller and written at once, ahead of the backlog batch still
in the child (as it goes ahead of the rest of the backlog); the backlog is written in order.

The child is a plain subprocess, not a multiprocessing one, so a poller run by a job
cluster's (daemonic) worker can start it too. It reads the batches on its stdin (each batch's
raw bytes and the mailbox's rules, not its password) and sends back the unsaved Email rows,
in order, on its stdout. The poller stops it when the sync ends; it also ends by itself when
its stdin closes, so a poller killed outright leaves none behind. When the child cannot
start, dies, fails or sends nothing back for PARSE_TIMEOUT_SECONDS (the poller keeps its
lease meanwhile), the poller stops it, parses the batches itself and says so in its log.
Nothing is lost either way: a batch is only recorded from what the poller holds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle  # nosec B403: the poller and its own child, on their private pipes
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as WaitedTooLong
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

import django

if TYPE_CHECKING:
    from mail.models import Email, Mailbox
    from mail.pipeline import Fetched

# This module is imported by the child before Django is set up (it names the child's start
# and its work): the models and the pipeline are imported where they are used.

logger = logging.getLogger(__name__)

PARSE_APART_ABOVE = 400
# Where a backlog is parsed apart: where the database runs inside the poller's process
# (SQLite), so that the poller's core would also do the database's work. PostgreSQL works in
# processes of its own, which keep the other core busy: there a child costs more CPU than it
# frees, and the poller parses faster itself (bench/README.md, 2026-11-27).
PARSE_APART_DATABASES = ("sqlite",)
# What the rules applied while parsing (pipeline.examine) read of a mailbox.
RULE_FIELDS = ("allowed_senders", "timezone", "subject_group_dedup", "subject_group_monthly")
# A batch this large is one large message: parsed here, not copied to the child first.
APART_MAX_BYTES = 8 * 1024 * 1024
# A batch the child has not sent back after this long is parsed here (a hung child). The
# poller renews its lease meanwhile, every WAIT_SLICE_SECONDS.
PARSE_TIMEOUT_SECONDS = 60.0
WAIT_SLICE_SECONDS = 1.0
CHILD_COMMAND = ("-c", "from mail.parsers import serve; serve()")


class ParserFailed(Exception):
    """The child could not parse a batch (its error, as text)."""


def parse_rows(rules: Mailbox, uidvalidity: int | None, items: Sequence[Fetched]) -> list[Email]:
    """In the child: the batch's Email rows, one per item, in order."""
    from mail.pipeline import parse_batch

    return [email for email, _ in parse_batch(rules, uidvalidity, items)]


def serve() -> None:
    """The child: batches from stdin, replies to what was stdout, until stdin closes.

    Ctrl-C, sent to the whole process group, is the poller's to handle (it finishes the
    current batch). Whatever the child would print goes to stderr, so that only replies go
    down the reply pipe.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    django.setup()
    while True:
        try:
            rules, uidvalidity, items = pickle.load(sys.stdin.buffer)  # noqa: S301  # nosec B301: from our poller
        except (EOFError, pickle.UnpicklingError):
            return  # the poller closed the pipe, or is gone (perhaps in the middle of a batch)
        try:
            reply: tuple[str, Any] = ("rows", parse_rows(rules, uidvalidity, items))
        except Exception as e:  # sent back: the poller parses this batch itself
            reply = ("error", f"{type(e).__name__}: {e}")
        try:
            pickle.dump(reply, replies, protocol=pickle.HIGHEST_PROTOCOL)
            replies.flush()
        except BrokenPipeError:
            return


def interpreter(base_dir: Path) -> str:
    """The Python of the code in `base_dir`: in a release layout (deploys/), where the process
    runs `current/.venv/bin/python`, the release's own virtualenv, wherever `current` points by
    now; otherwise this process's interpreter."""
    executable = Path(sys.executable)
    own = base_dir / ".venv" / "bin" / executable.name
    if executable.parent.parent.name == ".venv" and own.exists():
        return str(own)
    return sys.executable


class Child:
    """The parser process, and the one thread that talks to it (a batch at a time, in order)."""

    def __init__(self) -> None:
        from django.conf import settings

        self.process = subprocess.Popen(
            [interpreter(settings.BASE_DIR), *CHILD_COMMAND],
            cwd=settings.BASE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._talk = ThreadPoolExecutor(1, thread_name_prefix="parser")

    def submit(self, rules: Mailbox, uidvalidity: int | None, items: Sequence[Fetched]) -> Future[list[Email]]:
        return self._talk.submit(self._exchange, (rules, uidvalidity, list(items)))

    def _exchange(self, request: tuple[Any, ...]) -> list[Email]:
        stdin, stdout = cast(IO[bytes], self.process.stdin), cast(IO[bytes], self.process.stdout)  # both piped
        try:
            pickle.dump(request, stdin, protocol=pickle.HIGHEST_PROTOCOL)
            stdin.flush()
            kind, value = pickle.load(stdout)  # noqa: S301  # nosec B301: from our child
        except (BrokenPipeError, EOFError, pickle.UnpicklingError):
            raise ParserFailed(self._ended()) from None
        if kind != "rows":
            raise ParserFailed(value)
        rows: list[Email] = value
        return rows

    def _ended(self) -> str:
        try:
            status = self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "it closed its pipes"
        return f"it was killed by signal {-status}" if status < 0 else f"it exited with status {status}"

    def stop(self) -> None:
        """Ends the child at once (it holds nothing but batches the poller also holds)."""
        self.process.kill()
        self.process.wait()
        self._talk.shutdown(wait=True, cancel_futures=True)  # its exchange ends with the pipes
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):  # what was buffered for a dead child goes nowhere
                    pipe.close()


class Parsing:
    """Where a sync's batches are parsed: in a child process, or here."""

    def __init__(self, mailbox: Mailbox, backlog: int, keep_alive: Callable[[], None] = lambda: None) -> None:
        from django.db import connection

        from mail.models import Mailbox

        self.mailbox = mailbox
        self.keep_alive = keep_alive  # called about once a second while a parse is awaited
        # The child needs the mailbox's rules, not its account.
        rules = {field: getattr(mailbox, field) for field in RULE_FIELDS}
        self._rules = Mailbox(pk=mailbox.pk, name=mailbox.name, **rules)
        self._child: Child | None = None
        if backlog <= PARSE_APART_ABOVE:
            return
        where = "here (the database works on the other core)"
        if connection.vendor in PARSE_APART_DATABASES:
            try:
                self._child = Child()
                where = "in a parser process"
            except OSError as e:
                where = f"here (the parser process could not start: {e})"
        logger.info("POLLER: a backlog of %d messages in %s: parsed %s", backlog, mailbox, where)

    @property
    def depth(self) -> int:
        """How many fetched batches wait for their parse before the oldest is written."""
        return 1 if self._child is not None else 0

    def submit(self, uidvalidity: int | None, items: list[Fetched]) -> Future[list[Email]] | None:
        if self._child is None or sum(len(item.raw) for item in items) > APART_MAX_BYTES:
            return None
        try:
            return self._child.submit(self._rules, uidvalidity, items)
        except RuntimeError as e:  # no thread to talk to it ("can't start new thread")
            self._lost(e)
            return None

    def result(
        self, parsing: Future[list[Email]] | None, uidvalidity: int | None, items: list[Fetched]
    ) -> list[tuple[Email, Fetched]]:
        """The batch's rows: those the child parsed, or parsed here."""
        if parsing is not None:
            try:
                emails = self._awaited(parsing)
            except ParserFailed as e:  # this batch is parsed here
                self._lost(e)
            else:
                for email in emails:
                    email.mailbox = self.mailbox
                return list(zip(emails, items, strict=True))
        from mail.pipeline import parse_batch

        return parse_batch(self.mailbox, uidvalidity, items)

    def _awaited(self, parsing: Future[list[Email]]) -> list[Email]:
        deadline = time.monotonic() + PARSE_TIMEOUT_SECONDS
        while True:
            try:
                return parsing.result(timeout=WAIT_SLICE_SECONDS)
            except WaitedTooLong:
                if time.monotonic() >= deadline:
                    raise ParserFailed(f"it sent nothing back in {PARSE_TIMEOUT_SECONDS:.0f} s; stopped it") from None
            except ParserFailed:
                raise
            except Exception as e:  # whatever else failed with the child
                raise ParserFailed(f"{type(e).__name__}: {e}") from e
            self.keep_alive()  # its errors (a lost lease) are the poller's, not the child's

    def _lost(self, error: Exception) -> None:
        if self._child is not None:  # once: the batches that were waiting on it fail alike
            reason = str(error) if isinstance(error, ParserFailed) else f"{type(error).__name__}: {error}"
            logger.warning("POLLER: the parser process stopped (%s); parsing in the poller", reason)
        self.close()

    def close(self) -> None:
        if self._child is not None:
            child, self._child = self._child, None
            child.stop()
