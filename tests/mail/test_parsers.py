"""A backlog parsed in a child process (mail/parsers.py): the rows are those the poller itself
would record, each message once, and nothing is lost when the child dies."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

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
    assert "the parser process stopped (ParserFailed: it was killed by signal 9)" in caplog.text
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


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # ended (a zombie until whoever adopted it reaps it)


def test_a_poller_killed_outright_leaves_no_parser_process_behind():
    starts_a_child = (
        "import django; django.setup(); from mail.parsers import Child; print(Child().process.pid, flush=True); input()"
    )
    poller_process = subprocess.Popen(
        [sys.executable, "-c", starts_a_child],
        cwd=ROOT,
        env=base_env(DJANGO_SETTINGS_MODULE="signalserver.settings", DEBUG="true"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert poller_process.stdout is not None
    child_pid = int(poller_process.stdout.readline())
    assert not gone(child_pid)
    poller_process.kill()  # SIGKILL: nothing of the poller's runs to stop its child
    poller_process.wait()
    wait_until(lambda: gone(child_pid), timeout=30, message="the parser process ended with its poller")
