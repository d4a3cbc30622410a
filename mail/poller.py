"""The mailbox poller: hold the lease, fetch what is new, wait with IDLE, never give up.

One session holds a mailbox's lease until its deadline or a stop request: it connects,
records every message above the last seen UID, then waits with IMAP IDLE (or sleeps its
poll interval) and repeats. Connection errors are recorded on the mailbox, in words, and
retried with backoff (1, 2, 4 … 60 s). The same code serves the scheduled django-q2 job and
`manage.py poll`.

No blind spot: after every wait (an IDLE renewal included) the session asks the server for
news (NOOP) before it searches, and searches again whenever the server announced mail while
it was busy. A scheduled session hands over without a gap: at its end it starts its
successor and keeps serving until the successor is connected and waiting; only then does it
let go of the lease, which the successor takes at once.

Others reach a running session through its lease row, which it reads about once a second:
"check now" asks it to fetch at once, and a successor says it is ready.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings
from django.db import close_old_connections, connection, connections
from django.utils import timezone
from imapclient import IMAPClient

from mail import imap
from mail.lease import Lease, redis_key
from mail.models import Email, Mailbox
from mail.parsers import Parsing
from mail.pipeline import Fetched, Polled, record_polled

logger = logging.getLogger(__name__)

BATCH_BYTES = 8 * 1024 * 1024
BATCH_MESSAGES = 200
CHUNK_BYTES = 2 * 1024 * 1024
CONNECTION_FIELDS = ("host", "port", "use_ssl", "username", "password", "folder", "mode")
# A session past its end serves this much longer at most while its successor connects.
HANDOVER_GRACE_SECONDS = 20
# How often a successor, connected and waiting, looks whether the lease is free.
TAKE_OVER_POLL_SECONDS = 0.05


def fetch_in_chunks(client: IMAPClient, uid: int, size: int) -> bytearray:
    """A large message in partial fetches, so the IMAP library never holds it all at once.

    The buffer is allocated once at the announced size and filled in place: grown chunk by
    chunk, it was reallocated and copied as it grew, which cost a third more memory than the
    message at the peak.
    """
    raw = bytearray(size)
    offset = 0
    while offset < size:
        response = client.fetch([uid], [f"BODY.PEEK[]<{offset}.{CHUNK_BYTES}>"])
        chunk = response.get(uid, {}).get(f"BODY[]<{offset}>".encode())
        if not chunk:
            break
        raw[offset : offset + len(chunk)] = chunk
        offset += len(chunk)
        del response, chunk  # before the next chunk arrives
    del raw[offset:]  # the message was shorter than announced
    return raw


@dataclass
class InFlight:
    uids: list[int]
    saving: Future[Polled]


@dataclass
class Waiting:
    uids: list[int]
    fetched: list[Fetched]
    parsing: Future[list[Email]] | None


class BatchWriter:
    """Runs batch inserts on one thread of its own, or inline inside a caller's transaction.

    A caller holding a transaction (a test, a nested call) must see the rows in it, so
    there the inserts run at once on the caller's connection.
    """

    def __init__(self) -> None:
        self._pool = None if connection.in_atomic_block else ThreadPoolExecutor(1, thread_name_prefix="batch-writer")

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        if self._pool is not None:
            return self._pool.submit(fn, *args)
        done: Future[Any] = Future()
        done.set_result(fn(*args))
        return done

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.submit(connections.close_all).result()
            self._pool.shutdown(wait=True)


class StopFlag(Protocol):
    def is_set(self) -> bool: ...
    def wait(self, timeout: float | None = ...) -> bool: ...


class LeaseLost(Exception):
    pass


def mailbox_lease(mailbox: Mailbox) -> Lease:
    first_id = Mailbox.objects.order_by("id").values_list("id", flat=True).first()
    return Lease(mailbox.lease_name, redis_key(mailbox.name, first=mailbox.pk == first_id))


def announces_mail(responses: Sequence[Any]) -> bool:
    return any(isinstance(r, tuple) and len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses)


class Poller:
    def __init__(self, mailbox: Mailbox, lease: Lease, stop: StopFlag, ignore_schedule: bool = False) -> None:
        self.mailbox = mailbox
        self.lease = lease
        self.stop = stop
        self.ignore_schedule = ignore_schedule
        self.until = math.inf
        self.on_handover: Callable[[], object] | None = None
        self._handover_started = False
        self._successor = ""
        self._wake: dt.datetime | None = None
        self._next_renew = time.monotonic() + lease.seconds / 3
        self._sizes: dict[int, int] = {}
        self._highest = 0  # the highest UID this sync has seen
        self._unfinished: set[int] = set()  # seen, not yet committed

    def active(self) -> bool:
        return self.ignore_schedule or self.mailbox.is_active(timezone.now())

    def renew_if_due(self) -> None:
        if time.monotonic() >= self._next_renew:
            if not self.lease.renew():
                raise LeaseLost(self.mailbox.name)
            self._next_renew = time.monotonic() + self.lease.seconds / 3

    def watch(self) -> None:
        """About once a second while waiting: renew the lease when due, read what others ask."""
        self.renew_if_due()
        requests = self.lease.requests()
        self._wake, self._successor = requests.wake_requested_at, requests.successor

    def over(self) -> bool:
        """True once the session must end: stopped, or past its end (when it hands over: and
        its successor is ready, or the grace period is spent)."""
        if self.stop.is_set():
            return True
        now = time.monotonic()
        if now < self.until:
            return False
        if self.on_handover is None:
            return True
        if not self._handover_started:
            self._handover_started, self._successor = True, ""
            self.lease.forget_successor()
            self.on_handover()
        return bool(self._successor) or now >= self.until + HANDOVER_GRACE_SECONDS

    def keep_waiting(self) -> bool:
        """Whether a wait for mail may go on: not when stopped, asked to fetch, over, or when the
        admin disabled, deleted or re-pointed the mailbox."""
        self.watch()
        return self._wake is None and not self.over() and not self._edited()

    def _edited(self) -> bool:
        """True when the mailbox row no longer says what this session serves (read once a second)."""
        fields = ("enabled", *CONNECTION_FIELDS)
        row = Mailbox.objects.filter(pk=self.mailbox.pk).values_list(*fields).first()
        return row != tuple(getattr(self.mailbox, f) for f in fields)

    def sleep(self, seconds: float) -> None:
        """Wait up to `seconds`, renewing the lease; ends early on stop, a wake-up or the session's end."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and self.keep_waiting():
            self.stop.wait(min(1.0, max(end - time.monotonic(), 0)))

    # One pass over new mail
    def _batches(self, client: IMAPClient, uids: Sequence[int]) -> Iterator[list[int]]:
        for start in range(0, len(uids), 1000):
            chunk = list(uids[start : start + 1000])
            sizes = client.fetch(chunk, ["RFC822.SIZE"])
            batch: list[int] = []
            batch_bytes = 0
            for uid in chunk:
                size = self._sizes[uid] = int(sizes.get(uid, {}).get(b"RFC822.SIZE", 0))
                if batch and (batch_bytes + size > BATCH_BYTES or len(batch) >= BATCH_MESSAGES):
                    yield batch
                    batch, batch_bytes = [], 0
                batch.append(uid)
                batch_bytes += size
            if batch:
                yield batch

    def _arrivals_first(self, client: IMAPClient, uids: list[int]) -> Iterator[list[int]]:
        """The batches of `uids`; mail that arrives meanwhile is looked for after each batch and
        goes before the rest, so a long sync (a backlog) does not hold back new mail."""
        self._highest, self._unfinished = max(uids, default=self.mailbox.last_uid), set(uids)
        self._arrived: set[int] = set()
        batches = self._batches(client, uids)
        for batch in batches:
            yield batch
            arrived = sorted(u for u in client.search(["UID", f"{self._highest + 1}:*"]) if u > self._highest)
            if arrived:
                self._highest = arrived[-1]
                self._unfinished.update(arrived)
                self._arrived.update(arrived)
                yield from self._batches(client, arrived)

    def _fetch(self, client: IMAPClient, batch: list[int]) -> list[Fetched]:
        if len(batch) == 1 and self._sizes.get(batch[0], 0) > BATCH_BYTES:
            raw = fetch_in_chunks(client, batch[0], self._sizes[batch[0]])
            return [Fetched(batch[0], raw)] if raw else []
        fetched = client.fetch(batch, ["BODY.PEEK[]"])
        return [Fetched(uid, fetched[uid][b"BODY[]"]) for uid in batch if b"BODY[]" in fetched.get(uid, {})]

    def _flag(self, client: IMAPClient, emails: Sequence[Email]) -> None:
        """Add each recorded message's flags (the mailbox's read policy, its keyword), grouped by
        flags. Their rows already say they are marked read (`pipeline.record_polled`)."""
        groups: dict[tuple[bytes, ...], list[int]] = {}
        for email in emails:
            flags = tuple(self.mailbox.flags_for(email.decision))
            if email.uid is not None and flags:
                groups.setdefault(flags, []).append(email.uid)
        for flags, uids in groups.items():
            client.add_flags(uids, list(flags), silent=True)

    def sync(self, client: IMAPClient, uidvalidity: int) -> int:
        """Record every message above the last processed UID; returns how many were new.

        Batches go through a pipeline: while the writer thread decides on one and inserts it
        (on its own database connection, one batch after the other), the next is fetched and
        parsed; for a large backlog, parsed in a child process while the one after it is
        fetched (mail/parsers.py). A batch is flagged and the position moves past it only
        once it is committed.
        """
        mailbox = self.mailbox
        started = time.monotonic()
        if mailbox.uidvalidity != uidvalidity:
            if mailbox.uidvalidity is not None:
                logger.warning(
                    "IMAP: UIDVALIDITY of %s changed from %s to %s: rescanning, known messages are skipped",
                    mailbox,
                    mailbox.uidvalidity,
                    uidvalidity,
                )
            mailbox.save_position(uidvalidity, 0)
        uids = sorted(u for u in client.search(["UID", f"{mailbox.last_uid + 1}:*"]) if u > mailbox.last_uid)
        created = 0
        parsing = Parsing(mailbox, len(uids), keep_alive=self.renew_if_due)
        with BatchWriter() as writer:
            # Fetched batches waiting for their parse: one while a child process parses (it
            # parses a batch while the next is fetched), none when parsing happens here.
            waiting: deque[Waiting] = deque()
            in_flight: InFlight | None = None

            def write_oldest() -> None:
                """Hand the oldest parsed batch to the writer, once the batch before it is committed."""
                nonlocal in_flight, created
                oldest = waiting.popleft()
                rows = parsing.result(oldest.parsing, uidvalidity, oldest.fetched)
                if in_flight:
                    done, in_flight = in_flight, None
                    created += self._committed(client, uidvalidity, done)
                in_flight = InFlight(oldest.uids, writer.submit(record_polled, mailbox, uidvalidity, rows))

            try:
                for batch in self._arrivals_first(client, uids):
                    if self.stop.is_set():
                        break
                    fetched = self._fetch(client, batch)
                    if batch[0] in self._arrived:  # mail arriving now: parsed here, written first
                        waiting.appendleft(Waiting(batch, fetched, None))
                    else:
                        waiting.append(Waiting(batch, fetched, parsing.submit(uidvalidity, fetched)))
                    while len(waiting) > parsing.depth or (waiting and waiting[0].parsing is None):
                        write_oldest()
                        self.renew_if_due()
                while waiting and not self.stop.is_set():  # the last batches, once all are fetched
                    write_oldest()
            finally:
                parsing.close()
                # Also when fetching the next batch failed: the one being inserted is finished.
                # Batches fetched and not yet written are fetched again by the next sync.
                if in_flight:
                    created += self._committed(client, uidvalidity, in_flight)
        mailbox.record_good_cycle(time.monotonic() - started)
        if created:
            logger.info("POLLER: %d new email(s) recorded from %s", created, mailbox)
        return created

    def _committed(self, client: IMAPClient, uidvalidity: int, batch: InFlight) -> int:
        """Wait for a batch's insert, flag its messages, then move the position up to the first
        UID not yet committed (new mail goes first, so batches may commit out of order).

        Flagged before the position moves: a session stopped in between fetches the batch
        again and flags it then (`pipeline.record_polled`)."""
        polled = batch.saving.result()
        try:
            self._flag(client, polled.to_flag)
        except imap.IMAP_ERRORS as e:
            if not imap.refused(e):
                raise  # the connection: the batch is fetched again, and flagged then
            self._not_flagged(uidvalidity, polled, e)
        self._unfinished.difference_update(batch.uids)
        self.mailbox.save_position(uidvalidity, min(self._unfinished) - 1 if self._unfinished else self._highest)
        return len(polled.created)

    def _not_flagged(self, uidvalidity: int, polled: Polled, error: BaseException) -> None:
        """The server refused the flags (a read-only folder, a keyword it does not take): the
        batch stays recorded and the position moves on (else every retry would stop at it),
        its rows say they are not marked read, and the log says why."""
        logger.warning(
            "IMAP: %s refused to flag %d message(s) (%s); they are recorded but not marked read. "
            "Check that the account may change flags in %s, and the mailbox's keyword.",
            self.mailbox,
            len(polled.to_flag),
            imap.technical(error),
            self.mailbox.folder,
        )
        uids = [e.uid for e in polled.to_flag]
        Email.objects.filter(mailbox=self.mailbox, uidvalidity=uidvalidity, uid__in=uids).update(seen_flagged=False)

    def look(self, client: IMAPClient, uidvalidity: int) -> int:
        """Record everything new, until the server announces nothing more; returns how many.

        NOOP first: the server brings this connection's view of the folder up to date, so the
        search sees mail that arrived while IDLE was ending (else the server would announce
        it only after the search, and IDLE would not announce it again). Mail arriving during
        a round is announced at its end and searched for in another round.
        """
        wake, self._wake = self.lease.requests().wake_requested_at, None
        created = 0
        while True:
            client.noop()
            imap.new_mail_announced(client)  # the search below covers what NOOP announced
            created += self.sync(client, uidvalidity)
            if self.stop.is_set() or not imap.new_mail_announced(client):
                break
        if wake is not None:
            self.lease.wake_done(wake)
            self.mailbox.record_check(f"{created} new email(s), fetched by the running poller.")
        return created

    def idle(self, client: IMAPClient) -> None:
        """Wait in IDLE for new mail, for at most IMAP_TIMEOUT_SECONDS.

        Ending IDLE that often proves the connection alive: a server that does not answer
        DONE within the socket timeout is dead and gets replaced (and IDLE never reaches
        the servers' 29-minute limit). The caller looks for new mail after every DONE.
        """
        client.idle()
        round_end = time.monotonic() + settings.IMAP_TIMEOUT_SECONDS
        instant_empty = 0
        try:
            while time.monotonic() < round_end and self.active() and self.keep_waiting():
                if imap.has_unread_responses(client):
                    return  # news that came with an earlier line: look now (idle_check cannot see it)
                started = time.monotonic()
                responses = client.idle_check(timeout=1)
                if announces_mail(responses):
                    return
                # imapclient swallows EOF and returns at once: several instant empty answers
                # in a row mean the server closed the connection.
                instant_empty = instant_empty + 1 if not responses and time.monotonic() - started < 0.2 else 0
                if instant_empty >= 3:
                    raise ConnectionResetError("the IMAP server closed the connection")
        finally:
            with contextlib.suppress(*imap.IMAP_ERRORS):
                client.idle_done()

    def _settings_changed(self) -> bool:
        """Reload the mailbox (the admin may have edited it); True when the connection must be redone."""
        before = {f: getattr(self.mailbox, f) for f in CONNECTION_FIELDS}
        try:
            self.mailbox.refresh_from_db()
        except Mailbox.DoesNotExist:
            return True
        return not self.mailbox.enabled or before != {f: getattr(self.mailbox, f) for f in CONNECTION_FIELDS}

    def serve_connected(self, client: IMAPClient) -> None:
        uidvalidity = imap.select(client, self.mailbox.folder)
        use_idle = self.mailbox.mode == "idle" and b"IDLE" in client.capabilities()
        while not self.over():
            self.look(client, uidvalidity)
            if not self.active() or self._settings_changed():
                return
            if use_idle:
                self.idle(client)
            else:
                self.sleep(self.mailbox.poll_interval_seconds)
        if self._handover_started and self._successor:
            self.lease.release()  # the successor is connected: it takes over before this one logs out

    def run_once(self) -> int:
        """Connect, record what is new, log out (`poll --once`, "check now")."""
        with imap.connect(self.mailbox) as client:
            return self.look(client, imap.select(client, self.mailbox.folder))

    def _still_wanted(self) -> bool:
        try:
            self.mailbox.refresh_from_db()
        except Mailbox.DoesNotExist:
            logger.info("BG_POLLER: mailbox %s was deleted; stopping", self.mailbox)
            return False
        if not self.mailbox.enabled:
            logger.info("BG_POLLER: mailbox %s is disabled; stopping", self.mailbox)
        return self.mailbox.enabled

    def serve(
        self, until: float, on_handover: Callable[[], object] | None = None, ready: IMAPClient | None = None
    ) -> None:
        """Serve until `until` (then hand over when `on_handover` is given); `ready` is a
        connection opened before the lease was taken."""
        self.until, self.on_handover = until, on_handover
        backoff = 1
        while not self.over():
            if not connection.in_atomic_block:
                close_old_connections()
            if not self._still_wanted():
                return
            if not self.active() and self._wake is None:
                logger.info("BG_POLLER: outside the active period of %s", self.mailbox)
                self.sleep(min(self.mailbox.inactive_interval_seconds, 60))
                continue
            try:
                with contextlib.nullcontext(ready) if ready else imap.connect(self.mailbox) as client:
                    ready, backoff = None, 1
                    self.serve_connected(client)
            except imap.IMAP_ERRORS as e:
                self._failed(imap.explain(e, self.mailbox), imap.technical(e), backoff)
                backoff = min(backoff * 2, 60)
            except LeaseLost:
                raise
            except Exception as e:  # the loop boundary: record, wait, go on (never die for good)
                logger.exception("POLLER: unexpected error on %s", self.mailbox)
                message = f"An unexpected error ({type(e).__name__}) interrupted the poller; it retries by itself."
                self._failed(message + " The log has the details.", imap.technical(e), backoff)
                backoff = min(backoff * 2, 60)

    def _failed(self, message: str, detail: str, backoff: int) -> None:
        logger.warning("IMAP: %s on %s; reconnecting in %d s (%s)", detail, self.mailbox, backoff, message)
        self.mailbox.record_error(message)
        wake, self._wake = self.lease.requests().wake_requested_at, None
        if wake is not None:  # a "check now" gets this answer, rather than a reconnection at once
            self.lease.wake_done(wake)
            self.mailbox.record_check(f"Not checked: {message}")
        self.sleep(backoff)


@contextlib.contextmanager
def held_lease(
    mailbox: Mailbox, stop: StopFlag, wait: float = 0, poll: float = 1.0, lease: Lease | None = None
) -> Iterator[Lease | None]:
    """The mailbox's lease, waiting up to `wait` seconds for it, looking every `poll` seconds
    (None when another poller keeps it); released on leaving the block."""
    lease = lease or mailbox_lease(mailbox)
    give_up = time.monotonic() + wait
    try:
        while not lease.acquire():
            if stop.is_set() or time.monotonic() >= give_up:
                yield None
                return
            stop.wait(poll)
        yield lease
    finally:
        lease.release()
        lease.close()


def run_once(mailbox: Mailbox, stop: StopFlag, wait_for_lease: float = 0, ignore_schedule: bool = False) -> int | None:
    """Take the lease, record what is new once, release it: how many emails were new, or None
    when another poller holds the lease. IMAP errors are recorded on the mailbox, then raised."""
    with held_lease(mailbox, stop, wait_for_lease) as lease:
        if lease is None:
            return None
        try:
            return Poller(mailbox, lease, stop, ignore_schedule).run_once()
        except imap.IMAP_ERRORS as e:
            logger.warning("IMAP: %s on %s", imap.technical(e), mailbox)
            mailbox.record_error(imap.explain(e, mailbox))
            raise


@contextlib.contextmanager
def connected_ahead(mailbox: Mailbox, lease: Lease, ignore_schedule: bool) -> Iterator[IMAPClient | None]:
    """A connection opened before the lease is free, announced to its holder as ready to take
    over; None when the mailbox is not active now (announced too: there is nothing to connect
    to) or its server cannot be reached (the session then connects once it holds the lease)."""
    if not (ignore_schedule or mailbox.is_active(timezone.now())):
        lease.announce_successor()
        yield None
        return
    try:
        client = imap.open_client(mailbox)
        imap.select(client, mailbox.folder)
    except imap.IMAP_ERRORS as e:
        logger.info("BG_POLLER: could not connect to %s ahead of the hand-over (%s)", mailbox, imap.technical(e))
        yield None
        return
    lease.announce_successor()
    try:
        yield client
    finally:
        imap.logout(client)


def run_session(
    mailbox: Mailbox,
    stop: StopFlag,
    seconds: float = math.inf,
    wait_for_lease: float = 0,
    ignore_schedule: bool = False,
    on_handover: Callable[[], object] | None = None,
    take_over: bool = False,
) -> bool:
    """Take the mailbox's lease (waiting up to `wait_for_lease`) and serve for `seconds`.

    Returns False when another poller holds the lease. At the natural end of the session
    `on_handover` starts the next one, which this session waits for (see the module's
    docstring). `take_over`: this is that next session; it connects first, says so, and
    takes the lease the moment it is released.
    """
    lease = mailbox_lease(mailbox)
    with contextlib.ExitStack() as stack:
        ready = stack.enter_context(connected_ahead(mailbox, lease, ignore_schedule)) if take_over else None
        poll = TAKE_OVER_POLL_SECONDS if take_over else 1.0
        held = stack.enter_context(held_lease(mailbox, stop, wait_for_lease, poll, lease))
        if held is None:
            return False
        with contextlib.suppress(LeaseLost):
            Poller(mailbox, held, stop, ignore_schedule).serve(time.monotonic() + seconds, on_handover, ready)
        return True
