"""A backlog parsed in a child process (mail/parsers.py): the rows are those the poller itself
would record, each message once, and nothing is lost when the child dies."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys

import pytest
from django.core.management import call_command

from deploys.local import alive
from mail import parsers, poller
from mail.models import Email, Mailbox
from mail.pipeline import Fetched
from tests.conftest import ROOT, base_env, wait_until
from tests.mail.corpus import CORPUS, message

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FIELDS = ("message_id", "subject", "sender", "detector", "delivery_time", "links", "subject_group", "decision")


def order(n: int) -> bytes:
    return message(f"Média Solution - Missions Recadrage - Lot {n}", f"à faire pour 9h https://fromsmash.com/Lot{n}x")


def rows() -> list[tuple[object, ...]]:
    return list(Email.objects.order_by("uid").values_list(*FIELDS, "reason"))


def poll_from_the_start(mailbox: Mailbox) -> list[tuple[object, ...]]:
    Email.objects.all().delete()
    Mailbox.objects.filter(pk=mailbox.pk).update(last_uid=0)
    call_command("poll", once=True)
    return rows()


def test_a_backlog_parsed_in_a_child_process_is_recorded_as_the_poller_records_it(mailbox, imap, monkeypatch, caplog):
    for path in sorted(CORPUS.glob("*.eml")):  # every detector, replies, broken MIME, attachments
        imap.append(path.read_bytes())
    for n in range(12):
        imap.append(order(n))
    # The rules read while parsing: an allow-list that some of the corpus' senders are not on.
    Mailbox.objects.filter(pk=mailbox.pk).update(allowed_senders="missions@media-solution.example")
    monkeypatch.setattr(poller, "BATCH_MESSAGES", 4)
    here = poll_from_the_start(mailbox)
    monkeypatch.setattr(parsers, "PARSE_APART_ABOVE", 0)
    monkeypatch.setattr(parsers, "PARSE_APART_DATABASES", ("sqlite", "postgresql"))
    real_result = parsers.Parsing.result
    parsed_apart: list[int] = []

    def counting(self, parsing, uidvalidity, items):
        if parsing is not None:
            parsed_apart.append(len(items))
        return real_result(self, parsing, uidvalidity, items)

    monkeypatch.setattr(parsers.Parsing, "result", counting)
    with caplog.at_level(logging.INFO, logger="mail.parsers"):
        apart = poll_from_the_start(mailbox)
    assert "parsed in a parser process" in caplog.text
    assert "the parser process stopped" not in caplog.text  # the child parsed them, no fallback
    assert sum(parsed_apart) == len(here)
    assert len(here) == len(list(CORPUS.glob("*.eml"))) + 12
    assert apart == here
    assert any(decision == "skipped_sender" for *_, decision, _ in here)
    assert set(Email.objects.values_list("mailbox_id", flat=True)) == {mailbox.pk}


def test_when_the_parser_process_dies_the_poller_parses_and_loses_nothing(mailbox, imap, monkeypatch, caplog):
    for n in range(15):
        imap.append(order(n))
    monkeypatch.setattr(poller, "BATCH_MESSAGES", 5)
    monkeypatch.setattr(parsers, "PARSE_APART_ABOVE", 0)
    monkeypatch.setattr(parsers, "PARSE_APART_DATABASES", ("sqlite", "postgresql"))
    real_submit = parsers.Parsing.submit
    submitted: list[int] = []

    def die_before_the_second_batch(self, uidvalidity, items):
        submitted.append(len(items))
        if len(submitted) == 2 and self._child is not None:
            self._child.process.kill()
            self._child.process.wait()
        return real_submit(self, uidvalidity, items)

    monkeypatch.setattr(parsers.Parsing, "submit", die_before_the_second_batch)
    with caplog.at_level(logging.WARNING, logger="mail.parsers"):
        call_command("poll", once=True)
    assert "the parser process stopped (it was killed by signal 9); parsing in the poller" in caplog.text
    assert sorted(Email.objects.values_list("subject", flat=True)) == sorted(
        f"Média Solution - Missions Recadrage - Lot {n}" for n in range(15)
    )
    mailbox.refresh_from_db()
    assert mailbox.last_uid == max(imap.flags())


def test_a_batch_the_parser_process_fails_on_comes_back_as_its_error_and_the_next_is_parsed(mailbox):
    child = parsers.Child()
    try:
        items = [Fetched(uid=1, raw=order(1))]
        broken = child.submit(None, 7, items)  # type: ignore[arg-type]  # no rules: examine fails
        with pytest.raises(parsers.ParserFailed, match="AttributeError"):
            broken.result(timeout=60)
        rows = child.submit(parsers.Parsing(mailbox, 0)._rules, 7, items).result(timeout=60)
    finally:
        child.stop()
    assert [(row.subject, row.decision, row.uid) for row in rows] == [
        ("Média Solution - Missions Recadrage - Lot 1", "accepted", 1)
    ]


# A poller in a process of its own: it starts a parser process, has it parse one message,
# prints the child's pid and how many rows came back, then waits.
POLLER_WITH_A_CHILD = """
import django
django.setup()
from mail.models import Mailbox
from mail.parsers import Child
from mail.pipeline import Fetched
child = Child()
raw = b"From: a@example.com\\r\\nSubject: Commande 1\\r\\n\\r\\nhttps://fromsmash.com/Order1\\r\\n"
rows = child.submit(Mailbox(pk=1, name="x"), 7, [Fetched(uid=1, raw=raw)]).result(timeout=60)
print(child.process.pid, len(rows), rows[0].decision, flush=True)
input()
"""


def test_a_poller_killed_outright_leaves_no_parser_process_behind():
    poller_process = subprocess.Popen(
        [sys.executable, "-c", POLLER_WITH_A_CHILD],
        cwd=ROOT,
        env=base_env(DJANGO_SETTINGS_MODULE="signalserver.settings", DEBUG="true"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert poller_process.stdout is not None
    pid, rows, decision = poller_process.stdout.readline().split()
    assert (rows, decision) == ("1", "accepted")  # the child was at work
    assert alive(int(pid))
    poller_process.kill()  # SIGKILL: nothing of the poller's runs to stop its child
    poller_process.wait()
    wait_until(lambda: not alive(int(pid)), timeout=30, message="the parser process ended with its poller")


def test_a_parser_process_that_hangs_is_stopped_and_the_poller_parses_keeping_its_lease(mailbox, monkeypatch, caplog):
    monkeypatch.setattr(parsers, "PARSE_TIMEOUT_SECONDS", 2.0)
    monkeypatch.setattr(parsers, "WAIT_SLICE_SECONDS", 0.1)
    monkeypatch.setattr(parsers, "PARSE_APART_DATABASES", ("sqlite", "postgresql"))
    renewals: list[float] = []
    parsing = parsers.Parsing(mailbox, parsers.PARSE_APART_ABOVE + 1, keep_alive=lambda: renewals.append(1))
    assert parsing._child is not None
    child = parsing._child.process
    os.kill(child.pid, signal.SIGSTOP)  # hung: it reads nothing and answers nothing
    items = [Fetched(uid=n, raw=order(n)) for n in range(3)]
    with caplog.at_level(logging.WARNING, logger="mail.parsers"):
        rows = parsing.result(parsing.submit(7, items), 7, items)
    assert [email.subject for email, _ in rows] == [f"Média Solution - Missions Recadrage - Lot {n}" for n in range(3)]
    assert "the parser process stopped (it sent nothing back in 2 s; stopped it)" in caplog.text
    assert len(renewals) >= 10  # the lease was kept while it waited
    assert child.poll() is not None
    assert parsing.depth == 0  # the rest of the sync is parsed in the poller


def test_in_a_release_layout_the_parser_process_runs_the_python_of_the_release_the_poller_runs(tmp_path, monkeypatch):
    # deploys/: `current` points at releases/N and the cluster runs current/.venv/bin/python.
    # A release switch moves `current` before the cluster restarts; the poller's code is still N's.
    release = tmp_path / "releases" / "7"
    (release / ".venv" / "bin").mkdir(parents=True)
    (release / ".venv" / "bin" / "python").touch()
    monkeypatch.setattr(sys, "executable", str(tmp_path / "current" / ".venv" / "bin" / "python"))
    assert parsers.interpreter(release) == str(release / ".venv" / "bin" / "python")
    monkeypatch.setattr(sys, "executable", "/usr/local/bin/python")  # a container's Python: no venv
    assert parsers.interpreter(release) == "/usr/local/bin/python"
