"""The poller as it runs in production: sessions inside `manage.py qcluster`, handing over.

A proxy in front of Dovecot appends a message at exact points of the poller's conversation:
the instant it ends IDLE to renew it, the instant the first session logs out, and just
before the successor's first search. Each must be recorded at once, not a session later.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django_q.models import Task

from delivery.models import Endpoint
from deploys.local import alive
from mail.lease import holder
from mail.models import Email, Mailbox
from tests.conftest import ROOT, base_env, child_database_env, session_of, wait_until
from tests.mail.conftest import ImapAccount
from tests.mail.corpus import message
from tests.mail.imap_proxy import ImapProxy

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SESSION_SECONDS = 14
RENEW_SECONDS = 6  # IMAP_TIMEOUT_SECONDS: IDLE is renewed this often
PROMPT = 3.0  # seconds: "at once", with room for a busy machine; the next renewal is 6 s later


class Cluster:
    """`manage.py qcluster` on the test database, with short poller sessions."""

    def __init__(self, log: Path, **env: str) -> None:
        self.log = log.open("w+")
        settings = {
            "DEBUG": "true",
            "LOG_FORMAT": "text",
            "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
            "IMAP_TIMEOUT_SECONDS": str(RENEW_SECONDS),
            "POLLER_SESSION_SECONDS": str(SESSION_SECONDS),
            "POLLER_LEASE_SECONDS": "6",
        }
        environment = base_env(**{**settings, **child_database_env(), **env})
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            env=environment,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the main process stops its workers
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.seek(0)
        return self.log.read()


@pytest.fixture
def cluster_jobs() -> Iterator[None]:
    """Jobs go to the broker, for the real cluster, instead of running in this process."""
    from django_q.conf import Conf

    previous, Conf.SYNC = Conf.SYNC, False
    yield
    Conf.SYNC = previous


@pytest.fixture
def cluster(tmp_path: Path, cluster_jobs: None) -> Iterator[list[Cluster]]:
    started: list[Cluster] = []
    yield started
    for each in started:
        each.stop()


def start_session(mailbox: Mailbox) -> None:
    from django_q.tasks import async_task

    async_task("mail.tasks.poll_mailbox", mailbox.pk, 0, task_name=f"poll {mailbox.name}")


class Arrivals:
    """Messages appended straight to the server, and how long the poller took to see each one."""

    def __init__(self, imap: ImapAccount) -> None:
        self.imap = imap
        self.appended: dict[str, float] = {}  # Message-ID -> wall-clock time of the APPEND

    def append(self, label: str) -> None:
        msgid = f"<{label}@blind-spot.test>"
        self.imap.append(message(f"Commande {label}", f"https://fromsmash.com/{label}Order", msgid=msgid))
        self.appended[msgid] = time.time()

    def latencies(self, timeout: float) -> dict[str, float]:
        """Seconds from each APPEND to the moment the poller read the message (its row's
        received_at); a message missing here was not recorded within `timeout`."""

        def rows() -> Any:
            return Email.objects.filter(message_id__in=list(self.appended))

        wait_until(lambda: rows().count() == len(self.appended), timeout=timeout, message="every message recorded")
        seen = rows().values_list("message_id", "received_at")
        return {msgid: at.timestamp() - self.appended[msgid] for msgid, at in seen}


def test_mail_at_an_idle_renewal_or_a_session_handover_is_recorded_at_once(mailbox, imap, cluster, tmp_path):
    arrivals = Arrivals(imap)
    counts = {"DONE": 0, "LOGOUT": 0, "SEARCH": 0}

    def at_the_edges(connection: int, line: bytes) -> None:
        command = line.split(b" ")[1] if b" " in line else line
        if connection == 0 and line == b"DONE" and counts["DONE"] < 2:
            arrivals.append(f"renewal{counts['DONE'] + 1}")  # IDLE ends: the renewal instant
            counts["DONE"] += 1
        elif connection == 0 and command == b"LOGOUT" and not counts["LOGOUT"]:
            arrivals.append("handover")  # the first session lets go
            counts["LOGOUT"] += 1
        elif connection == 1 and b" SEARCH " in line and not counts["SEARCH"]:
            arrivals.append("successor")  # the next session is about to search for the first time
            counts["SEARCH"] += 1

    with ImapProxy(imap.port) as proxy:
        Mailbox.objects.update(port=proxy.port)
        proxy.hooks.append(at_the_edges)
        cluster.append(Cluster(tmp_path / "qcluster.log"))
        start_session(mailbox)
        wait_until(lambda: counts["SEARCH"], timeout=SESSION_SECONDS + 30, message="the successor's first search")
        latencies = arrivals.latencies(timeout=SESSION_SECONDS + 10)
        log = cluster[0].stop()
    conversation = "\n".join(f"{t:.3f} {c} {line[:60]!r}" for t, c, line in proxy.lines)
    assert len(latencies) == 4, conversation
    late = {msgid: round(s, 2) for msgid, s in latencies.items() if s > PROMPT}
    assert not late, f"late: {late}\n{conversation}\n{log[-3000:]}"
    assert Email.objects.count() == 4  # each once
    assert log.count("Singleton lock acquired") >= 2  # two sessions, handing over


def test_check_now_while_a_session_runs_asks_it_and_leaves_the_workers_free(mailbox, imap, cluster, tmp_path):
    Mailbox.objects.update(mode="poll", poll_interval_seconds=600)  # the session sleeps: only a check finds mail
    endpoint = Endpoint.objects.get()
    cluster.append(Cluster(tmp_path / "qcluster.log", POLLER_SESSION_SECONDS="120"))  # no hand-over meanwhile
    start_session(mailbox)
    wait_until(lambda: Mailbox.objects.get().last_good_cycle, timeout=30, message="the session's first look")
    imap.append(message("Commande 7", "https://fromsmash.com/Order0007", msgid="<order7@check.test>"))
    operator = Client()
    operator.force_login(User.objects.create_user("alice", password="pw", is_staff=True))
    clicked = time.monotonic()
    answers = [operator.post(f"/dashboard/mailboxes/{mailbox.pk}/check", follow=True) for _ in range(3)]
    operator.post("/dashboard/test-webhook", {"endpoint": endpoint.pk})
    wait_until(lambda: Email.objects.exists(), timeout=10, message="the running session fetched the new mail")
    wait_until(lambda: Endpoint.objects.get().last_test_result.startswith("OK"), timeout=10, message="the test webhook")
    waited = time.monotonic() - clicked
    wait_until(lambda: Mailbox.objects.get().check_requested_at is None, timeout=5, message="the check answered")
    box = Mailbox.objects.get()
    log = cluster[0].stop()
    assert "Check of orders queued" in answers[0].content.decode()
    assert all("already pending" in answer.content.decode() for answer in answers[1:])
    assert Task.objects.filter(func="mail.tasks.check_now").count() == 1, log[-3000:]
    assert box.last_check_result == "1 new email(s), fetched by the running poller."
    assert box.check_requested_at is None
    assert holder(box.lease_name) == ""
    assert waited < 10
    assert "1 new email(s), fetched by the running poller." in operator.get("/").content.decode()


def test_a_backlog_found_by_a_session_in_the_cluster_is_recorded_once_and_parsed_apart_on_sqlite(
    mailbox, imap, cluster, tmp_path
):
    from django.db import connection

    from mail.parsers import PARSE_APART_ABOVE, PARSE_APART_DATABASES

    count = PARSE_APART_ABOVE + 20
    client = imap.client()
    client.multiappend("INBOX", [message(f"Commande {n}", f"https://fromsmash.com/Order{n:04d}") for n in range(count)])
    client.logout()
    cluster.append(Cluster(tmp_path / "qcluster.log", POLLER_SESSION_SECONDS="120"))
    start_session(mailbox)
    wait_until(lambda: Email.objects.count() == count, timeout=60, message="the backlog recorded")
    log = cluster[0].stop()
    if connection.vendor in PARSE_APART_DATABASES:
        where = "in a parser process"
    else:  # PostgreSQL's own processes work on the other core
        where = "here (the database works on the other core)"
    assert f"a backlog of {count} messages in {mailbox}: parsed {where}" in log, log[-3000:]
    assert "the parser process stopped" not in log
    assert Email.objects.values("subject").distinct().count() == count  # each once
    wait_until(lambda: not parser_processes(session=cluster[0].proc.pid), timeout=10, message="no parser process left")


def parser_processes(session: int) -> list[int]:
    """The parser processes still running in a process session (the cluster's: it was started
    in a session of its own, which its descendants keep)."""
    found = []
    for process in Path("/proc").iterdir():
        if not process.name.isdigit() or session_of(process) != session or not alive(int(process.name)):
            continue
        with contextlib.suppress(OSError):  # ended meanwhile
            if b"from mail.parsers import serve" in (process / "cmdline").read_bytes():
                found.append(int(process.name))
    return found
