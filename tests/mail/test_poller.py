"""The poller against a real Dovecot server: IDLE, flags, leases, crashes and restarts."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from django.core.management import CommandError, call_command
from django.db import connections
from django.utils import timezone

from mail.lease import holder
from mail.models import Email, Mailbox, PollerLease
from mail.poller import Poller, run_session
from tests.conftest import ROOT, base_env, child_database_env, free_port, wait_until
from tests.mail.conftest import ImapAccount, always_active, start_imap_server, stop_imap_server
from tests.mail.corpus import eml, message

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class PollerThread:
    def __init__(self, mailbox: Mailbox, **kwargs: object) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(mailbox, kwargs))

    def _run(self, mailbox: Mailbox, kwargs: dict[str, object]) -> None:
        try:
            run_session(mailbox, self.stop, **kwargs)  # type: ignore[arg-type]
        finally:
            connections.close_all()

    def __enter__(self) -> PollerThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the poller did not stop"


def test_it_records_new_mail_pushed_by_idle_and_flags_it_seen(mailbox, imap):
    with PollerThread(mailbox):
        wait_until(lambda: Mailbox.objects.get().last_good_cycle, message="first cycle")
        imap.append(eml("recadrage_dropbox_folder.eml"))
        email = wait_until(lambda: Email.objects.first(), message="email recorded")
        wait_until(lambda: Email.objects.get().seen_flagged, message="flagged")
    assert email.detector == "recadrage"
    assert list(imap.flags().values()) == [(b"\\Seen",)]
    mailbox.refresh_from_db()
    assert mailbox.last_uid == email.uid and mailbox.uidvalidity == email.uidvalidity


def test_a_message_read_by_a_person_before_polling_is_still_processed(mailbox, imap):
    imap.append(eml("desabo_html_only.eml"), flags=(b"\\Seen",))
    call_command("poll", once=True)
    assert Email.objects.get().decision == "delivered"


def test_mail_from_outside_the_allow_list_stays_unread(mailbox, imap):
    mailbox.allowed_senders = "missions@media-solution.example"
    mailbox.save()
    imap.append(eml("wetransfer_notification.eml"))
    imap.append(eml("recadrage_dropbox_folder.eml"))
    call_command("poll", once=True)
    assert sorted(Email.objects.values_list("decision", flat=True)) == ["delivered", "skipped_sender"]
    assert sorted(imap.flags().values()) == [(), (b"\\Seen",)]


def poll_flags(imap: ImapAccount, *files: str) -> list[set[bytes]]:
    """Append the messages, poll once, and return each one's flags in order."""
    imap.empty()
    for name in files:
        imap.append(eml(name))
    call_command("poll", once=True)
    flags = imap.flags()
    return [set(flags[uid]) for uid in sorted(flags)]


def test_only_orders_are_marked_read_by_default_and_the_keyword_goes_on_every_recorded_email(mailbox, imap):
    mailbox.flag_keyword = "signalserver"
    mailbox.save()
    order, no_links = "recadrage_dropbox_folder.eml", "desabo_urgent.eml"
    assert poll_flags(imap, order, no_links) == [{b"\\Seen", b"signalserver"}, {b"signalserver"}]
    assert dict(Email.objects.values_list("decision", "seen_flagged")) == {"delivered": True, "skipped_no_links": False}


@pytest.mark.parametrize(("policy", "expected"), [("all", [{b"\\Seen"}, {b"\\Seen"}]), ("none", [set(), set()])])
def test_the_mailbox_chooses_which_mail_is_marked_read(mailbox, imap, policy, expected):
    Mailbox.objects.update(seen_policy=policy)
    assert poll_flags(imap, "recadrage_dropbox_folder.eml", "desabo_urgent.eml") == expected


def test_poll_once_respects_the_schedule_unless_now(mailbox, imap, capsys):
    Mailbox.objects.update(active_days="0", active_start="09:00", active_end="09:00")  # never active
    imap.append(eml("desabo_urgent.eml"))
    call_command("poll", once=True)
    assert "outside its active period" in capsys.readouterr().out
    assert not Email.objects.exists()
    call_command("poll", once=True, now=True)
    assert Email.objects.count() == 1


def test_a_batch_recorded_but_not_flagged_when_the_session_stopped_is_flagged_by_the_next_one(
    mailbox, imap, monkeypatch
):
    imap.append(eml("recadrage_dropbox_folder.eml"))
    imap.append(eml("desabo_urgent.eml"))
    flag = Poller._flag

    def connection_lost(*args: object) -> None:
        raise ConnectionResetError("the IMAP server closed the connection")

    monkeypatch.setattr(Poller, "_flag", connection_lost)
    with pytest.raises(CommandError, match="closed the connection"):
        call_command("poll", once=True)
    # Committed, not flagged: the position stays before the batch.
    assert Email.objects.count() == 2 and Mailbox.objects.get().last_uid == 0
    assert list(imap.flags().values()) == [(), ()]
    monkeypatch.setattr(Poller, "_flag", flag)
    call_command("poll", once=True)
    assert Email.objects.count() == 2  # fetched again, not recorded again
    assert sorted(imap.flags().values()) == [(), (b"\\Seen",)]
    assert dict(Email.objects.values_list("decision", "seen_flagged")) == {"delivered": True, "skipped_no_links": False}
    assert Mailbox.objects.get().last_uid == max(imap.flags())


def test_flags_the_server_refuses_do_not_stop_the_poller_at_that_batch(mailbox, imap, caplog):
    Mailbox.objects.update(flag_keyword="%x")  # Dovecot answers NO: invalid characters in keyword
    imap.append(eml("recadrage_dropbox_folder.eml"))
    call_command("poll", once=True)
    imap.append(eml("desabo_html_only.eml"))
    call_command("poll", once=True)
    assert Email.objects.count() == 2 and Mailbox.objects.get().last_uid == max(imap.flags())
    assert list(imap.flags().values()) == [(), ()]
    assert not Email.objects.filter(seen_flagged=True).exists()
    assert "refused to flag 1 message(s)" in caplog.text and "Invalid characters in keyword" in caplog.text


def test_a_uidvalidity_change_rescans_without_duplicates(mailbox, imap):
    imap.append(eml("desabo_urgent.eml"))
    imap.append(eml("desabo_html_only.eml"))
    call_command("poll", once=True)
    beyond = max(imap.flags()) + 1000  # UIDs grow through the whole run: this one is past them all
    Mailbox.objects.update(uidvalidity=1, last_uid=beyond)  # as if the server renumbered its messages
    imap.append(eml("wetransfer_notification.eml"))
    call_command("poll", once=True)
    assert Email.objects.count() == 3
    assert Mailbox.objects.get().last_uid < beyond


def test_connection_errors_are_recorded_in_words_and_retried_with_backoff(mailbox, caplog):
    port = free_port()
    Mailbox.objects.update(port=port)
    with PollerThread(mailbox):
        wait_until(lambda: Mailbox.objects.get().last_error, message="error recorded")
    box = Mailbox.objects.get()
    assert box.last_error.startswith(f"127.0.0.1:{port} refused the connection: nothing listens on that port.")
    assert "Error" not in box.last_error
    assert "ConnectionRefusedError: [Errno 111]" in caplog.text  # the detail stays in the log
    assert "reconnecting in 1 s" in caplog.text


def test_check_now_while_the_server_is_unreachable_gets_the_error_once(mailbox, caplog):
    from mail.lease import request_wake

    port = free_port()
    Mailbox.objects.update(port=port)
    with PollerThread(mailbox):
        wait_until(lambda: Mailbox.objects.get().current_error, message="error recorded")
        assert request_wake(mailbox.lease_name)
        result = wait_until(lambda: Mailbox.objects.get().last_check_result, timeout=10, message="check answered")
        caplog.clear()
        time.sleep(2.5)
    assert result.startswith(f"Not checked: 127.0.0.1:{port} refused the connection")
    assert caplog.text.count("reconnecting in") <= 2  # the backoff goes on: no reconnection loop


def test_a_wrong_password_is_explained_and_forgotten_once_a_good_cycle_follows(mailbox, caplog):
    Mailbox.objects.filter(pk=mailbox.pk).update(password="wrong")
    with PollerThread(mailbox):
        wait_until(lambda: Mailbox.objects.get().current_error, message="error recorded")
        box = Mailbox.objects.get()
        assert box.current_error == (
            "The server refused the login of inbox@example.test: the username or password is wrong. "
            "Correct them in Mail › Mailboxes (Gmail and Outlook need an app password)."  # noqa: RUF001
        )
        assert "AUTHENTICATIONFAILED" in caplog.text and "AUTHENTICATIONFAILED" not in box.last_error
        Mailbox.objects.filter(pk=mailbox.pk).update(password="secret")  # the operator fixes it
        wait_until(lambda: not Mailbox.objects.get().current_error, timeout=20, message="error aged")
    box = Mailbox.objects.get()
    assert box.last_good_cycle and box.last_error_at and box.last_error  # kept as history, no longer the state
    assert box.last_good_cycle > box.last_error_at


def test_the_admin_connection_test_reports_its_result(mailbox, admin_client):
    response = admin_client.post(
        "/admin/mail/mailbox/", {"action": "test_connection", "_selected_action": [mailbox.pk]}, follow=True
    )
    assert response.status_code == 200
    assert Mailbox.objects.get().last_test_result.startswith("OK: 0 message(s) in INBOX; IDLE supported")


class FakeCluster:
    """Enqueued jobs are noted; the first successor session runs in a thread, as a worker would."""

    def __init__(self, tasks: object) -> None:
        self.tasks = tasks
        self.enqueued: list[tuple[object, ...]] = []
        self.successors: list[threading.Thread] = []
        self.stop = threading.Event()

    def async_task(self, func: str, *args: object, **kwargs: object) -> None:
        self.enqueued.append((func, *args))
        if args[-1] is True and not self.successors:
            self.successors.append(threading.Thread(target=self._run, args=args))
            self.successors[0].start()

    def _run(self, *args: object) -> None:
        try:
            self.tasks.poll_mailbox(*args)  # type: ignore[attr-defined]
        finally:
            connections.close_all()

    def stop_all(self) -> None:
        self.stop.set()
        for thread in self.successors:
            thread.join(timeout=30)
            assert not thread.is_alive()


@pytest.fixture
def cluster(settings, monkeypatch) -> Iterator[FakeCluster]:
    from delivery import tasks as delivery_tasks
    from mail import tasks

    settings.POLLER_SESSION_SECONDS = 2
    fake = FakeCluster(tasks)
    monkeypatch.setattr(delivery_tasks, "_stop_event", fake.stop)
    monkeypatch.setattr(tasks, "async_task", fake.async_task)
    yield fake
    fake.stop_all()


def test_the_scheduled_job_hands_over_to_a_successor_that_is_already_connected(mailbox, imap, settings, cluster):
    from mail import tasks

    imap.append(eml("desabo_urgent.eml"))
    assert tasks.poll_mailboxes() == 1
    assert cluster.enqueued == [("mail.tasks.poll_mailbox", mailbox.pk, 0)]
    started = time.monotonic()
    assert tasks.poll_mailbox(mailbox.pk) is True
    assert 2 <= time.monotonic() - started < 10  # it ended when the successor was ready, not after the grace
    assert cluster.enqueued[-1] == ("mail.tasks.poll_mailbox", mailbox.pk, settings.POLLER_LEASE_SECONDS + 20, True)
    before = Mailbox.objects.get().last_good_cycle
    assert before is not None
    successor_holds = wait_until(lambda: holder(mailbox.lease_name), timeout=5, message="successor holds the lease")
    wait_until(lambda: Mailbox.objects.get().last_good_cycle != before, timeout=5, message="the successor looked")
    cluster.stop_all()
    assert f"pid={os.getpid()}" in successor_holds and Email.objects.count() == 1
    assert holder(mailbox.lease_name) == ""


def test_outside_active_hours_the_hand_over_is_at_once_too(mailbox, cluster):
    from mail import tasks

    Mailbox.objects.update(active_days="0", active_start="09:00", active_end="09:00")  # never active
    started = time.monotonic()
    assert tasks.poll_mailbox(mailbox.pk) is True
    assert time.monotonic() - started < 10  # the successor had nothing to connect to: no grace period
    wait_until(lambda: holder(mailbox.lease_name), timeout=5, message="successor holds the lease")


# Several processes
def poller_env(**extra: str) -> dict[str, str]:
    return base_env(DEBUG="true", LOG_FORMAT="text", POLLER_LEASE_SECONDS="3", **child_database_env(), **extra)


@pytest.fixture
def pollers() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def start_poller(pollers: list[subprocess.Popen[str]], env: dict[str, str]) -> subprocess.Popen[str]:
    import time

    proc = subprocess.Popen(
        [sys.executable, "manage.py", "poll"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pollers.append(proc)
    time.sleep(0.5)
    if proc.poll() is not None:
        raise AssertionError(proc.communicate()[0])
    return proc


def outputs(*procs: subprocess.Popen[str]) -> list[str]:
    """Stop the pollers together (else a waiting one takes over) and return their logs."""
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    return [proc.communicate(timeout=30)[0] for proc in procs]


def test_two_pollers_on_one_mailbox_process_each_email_exactly_once(mailbox, imap, pollers):
    env = poller_env()
    first, second = start_poller(pollers, env), start_poller(pollers, env)
    wait_until(lambda: holder("orders"), message="a lease holder")
    for n in range(20):
        imap.append(message(f"Commande {n}", f"https://fromsmash.com/Order{n:04d}", msgid=f"<order{n}@x>"))
    wait_until(lambda: Email.objects.count() == 20, message="20 emails")
    logs = outputs(first, second)
    assert Email.objects.count() == 20
    assert sum("Singleton lock acquired" in log for log in logs) == 1
    assert sum(log.count("POLLER: email ") for log in logs) == 20
    assert not any("DEDUP_EMAIL" in log for log in logs)
    assert holder("orders") == ""  # released on SIGTERM


def test_a_killed_lease_holder_is_replaced_within_one_lease_period(mailbox, imap, pollers):
    import time

    env = poller_env()
    first = start_poller(pollers, env)
    wait_until(lambda: holder("orders"), message="first holds the lease")
    second = start_poller(pollers, env)
    time.sleep(2)
    first_holder = holder("orders")
    assert f"pid={first.pid}" in first_holder
    first.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    imap.append(eml("desabo_urgent.eml"))
    wait_until(lambda: Email.objects.exists(), timeout=20, message="email recorded by the second poller")
    assert time.monotonic() - killed_at < 3 + 4  # lease period, plus connecting and fetching on a busy machine
    assert f"pid={second.pid}" in holder("orders")


def test_redis_stopped_mid_run_falls_back_to_the_database_lease(mailbox, imap, pollers, tmp_path):
    port = free_port()
    redis_proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        env = poller_env(REDIS_URL=f"redis://127.0.0.1:{port}/0")
        first, second = start_poller(pollers, env), start_poller(pollers, env)
        wait_until(lambda: holder("orders"), message="a lease holder")
        imap.append(message("Avant", "https://fromsmash.com/Before01", msgid="<before@x>"))
        wait_until(lambda: Email.objects.count() == 1, message="first email")
    finally:
        redis_proc.kill()
        redis_proc.wait()
    died = timezone.now()
    for n in range(5):
        imap.append(message(f"Après {n}", f"https://fromsmash.com/After{n:03d}", msgid=f"<after{n}@x>"))
    wait_until(lambda: Email.objects.count() == 6, timeout=30, message="all emails after Redis died")
    # The lease renewed after Redis died (each renewal asks Redis first), before the logs are read.
    renewed_after = died + dt.timedelta(seconds=3 + 1)
    wait_until(lambda: PollerLease.objects.get(name="orders").expires_at > renewed_after, message="a renewal")
    logs = outputs(first, second)
    assert sum("Singleton lock acquired (Redis)" in log for log in logs) == 1
    assert sum(log.count("POLLER: email ") for log in logs) == 6
    assert any("Redis unavailable for the lease" in log for log in logs)


def test_an_imap_server_restart_during_idle_loses_nothing(db, tmp_path, settings):
    directory, port, ssl_port = str(tmp_path / "imap"), free_port(), free_port()
    env = start_imap_server(directory, port, ssl_port)
    account = ImapAccount("127.0.0.1", port, env["IMAP_USER"], "secret")
    settings.IMAP_TIMEOUT_SECONDS = 3
    box = Mailbox.objects.create(
        **always_active(
            name="restart", host="127.0.0.1", port=port, use_ssl=False, username=account.username, password="secret"
        )
    )
    try:
        with PollerThread(box):
            wait_until(lambda: Mailbox.objects.get().last_good_cycle, message="first cycle")
            stop_imap_server(directory, port, ssl_port)
            wait_until(lambda: Mailbox.objects.get().last_error, message="disconnect noticed")
            start_imap_server(directory, port, ssl_port)
            account.append(eml("recadrage_dropbox_folder.eml"))
            wait_until(lambda: Email.objects.exists(), timeout=90, message="email after the restart")
    finally:
        stop_imap_server(directory, port, ssl_port)
    assert Email.objects.get().detector == "recadrage"


def test_sigterm_releases_the_lease_and_exits_cleanly(mailbox, pollers):
    proc = start_poller(pollers, poller_env())
    wait_until(lambda: holder("orders"), message="lease taken")
    [out] = outputs(proc)
    assert proc.returncode == 0
    assert "Poller stopped." in out
    assert holder("orders") == ""
    assert os.path.exists(ROOT / "manage.py")


def test_a_session_ends_cleanly_when_its_mailbox_is_deleted(mailbox):
    with PollerThread(mailbox) as poller:
        wait_until(lambda: Mailbox.objects.get().last_good_cycle, message="first cycle")
        Mailbox.objects.all().delete()
        poller.thread.join(timeout=10)  # read once a second, not at the next IDLE renewal
        assert not poller.thread.is_alive()


def test_admin_edits_reach_a_running_session(mailbox, imap):
    with PollerThread(mailbox) as poller:
        wait_until(lambda: Mailbox.objects.get().last_good_cycle, message="first cycle")
        Mailbox.objects.update(enabled=False)
        poller.thread.join(timeout=10)  # read once a second, not at the next IDLE renewal
        assert not poller.thread.is_alive()


def test_a_backlog_goes_through_the_batch_pipeline_once_each_in_order(mailbox, imap, monkeypatch):
    from mail import poller

    monkeypatch.setattr(poller, "BATCH_MESSAGES", 4)
    for n in range(10):
        imap.append(message(f"Commande {n}", f"https://fromsmash.com/Order{n}x", msgid=f"<order{n}@x>"))
    # Batches of four: UIDs 1-4, 5-8, 9-12, 13. While one is inserted the next is parsed, so
    # these find their twin in the batch just inserted: a message fetched again (UID 11,
    # first seen as UID 8) and a second email of a "Lot" group (UID 13 after 12).
    imap.append(message("Commande 7", "https://fromsmash.com/Order7x", msgid="<order7@x>"))
    lot = "Média Solution - Missions Recadrage - Lot 5"
    imap.append(message(lot, "https://fromsmash.com/Lot5first", msgid="<l5a@x>"))
    imap.append(message(lot, "https://fromsmash.com/Lot5second", msgid="<l5b@x>"))
    call_command("poll", once=True)
    assert Email.objects.count() == 12  # 13 messages, one of them twice
    assert Email.objects.get(message_id="<l5b@x>").decision == "skipped_duplicate_group"
    flags = imap.flags()
    assert [flags[uid] for uid in sorted(flags)].count((b"\\Seen",)) == 12  # not the copy, skipped as known
    mailbox.refresh_from_db()
    assert mailbox.last_uid == max(imap.flags())
    assert list(Email.objects.order_by("id").values_list("uid", flat=True)) == sorted(flags)[:10] + sorted(flags)[11:]


def test_a_failed_fetch_still_finishes_the_batch_being_inserted_and_loses_nothing(mailbox, imap, monkeypatch):
    from mail import poller

    monkeypatch.setattr(poller, "BATCH_MESSAGES", 3)
    for n in range(9):
        imap.append(message(f"Commande {n}", f"https://fromsmash.com/Order{n}x", msgid=f"<order{n}@x>"))
    real_fetch, calls = poller.Poller._fetch, []

    def flaky_fetch(self, client, batch):
        calls.append(batch)
        if len(calls) == 3:
            raise ConnectionResetError("the IMAP server closed the connection")
        return real_fetch(self, client, batch)

    monkeypatch.setattr(poller.Poller, "_fetch", flaky_fetch)
    with pytest.raises(CommandError, match="ConnectionResetError"):
        call_command("poll", once=True)
    assert Email.objects.count() == 6  # the second batch was being inserted when the third fetch failed
    mailbox.refresh_from_db()
    assert mailbox.last_uid == calls[1][-1]
    monkeypatch.setattr(poller.Poller, "_fetch", real_fetch)
    call_command("poll", once=True)
    assert Email.objects.count() == 9
    assert sorted(Email.objects.values_list("message_id", flat=True)) == [f"<order{n}@x>" for n in range(9)]


def _large_message() -> bytes:
    from email.mime.application import MIMEApplication
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText

    m = MIMEMultipart("mixed")
    m.attach(MIMEText("Voici les photos https://fromsmash.com/Big1x", "plain", "utf-8"))
    m.attach(MIMEText("<p>" + "lot à faire " * 2000 + "</p>", "html", "utf-8"))
    m.attach(MIMEApplication(os.urandom(60_000), "zip", Name="photos.zip"))
    m["Subject"], m["From"], m["Message-ID"] = "Gros envoi", "missions@media-solution.example", "<big@x>"
    return m.as_bytes()


def _server_copy(imap: ImapAccount) -> tuple[int, bytes]:
    client = imap.client()
    try:
        client.select_folder("INBOX", readonly=True)
        [uid] = client.search(["ALL"])
        return uid, client.fetch([uid], ["BODY.PEEK[]"])[uid][b"BODY[]"]
    finally:
        client.logout()


def test_a_large_message_fetched_in_parts_is_recorded_and_stored_byte_for_byte(mailbox, imap, monkeypatch):
    from mail import poller
    from mail.models import RawMessage
    from mail.parsing import parse_message

    monkeypatch.setattr(poller, "BATCH_BYTES", 20_000)  # above this a message is fetched in parts
    monkeypatch.setattr(poller, "CHUNK_BYTES", 7_000)
    monkeypatch.setattr(RawMessage, "CHUNK_BYTES", 16_384)
    imap.append(_large_message())
    _, raw = _server_copy(imap)
    call_command("poll", once=True)
    email = Email.objects.get()
    assert RawMessage.objects.filter(email=email).count() == -(-len(raw) // 16_384) > 1
    assert RawMessage.read(email.pk) == raw
    assert (email.size, email.text) == (len(raw), parse_message(raw).text)
    assert email.links == [{"provider": "fromsmash", "raw_url": "https://fromsmash.com/Big1x"}]


@pytest.mark.parametrize("announced", [0, 1, 10_000])
def test_a_message_fetched_in_parts_is_the_whole_message_when_its_size_was_overstated(imap, monkeypatch, announced):
    from mail import poller

    monkeypatch.setattr(poller, "CHUNK_BYTES", 7_000)
    imap.append(_large_message())
    uid, raw = _server_copy(imap)
    client = imap.client()
    try:
        client.select_folder("INBOX", readonly=True)
        fetched = poller.fetch_in_chunks(client, uid, len(raw) + announced if announced else len(raw))
    finally:
        client.logout()
    assert fetched == raw


def test_fetched_messages_are_not_formatted_for_a_debug_log_nobody_records(mailbox, imap):
    from mail import imap as mail_imap

    imap.append(_large_message())
    with mail_imap.connect(mailbox) as client:
        client.select_folder("INBOX", readonly=True)
        formatted: list[str] = []
        client._imap._mesg = formatted.append
        client.fetch(client.search(["ALL"]), ["BODY.PEEK[]"])
    assert formatted == []


def test_with_imaplib_debug_logging_on_the_exchange_is_logged(mailbox, caplog):
    import logging

    from mail import imap as mail_imap

    caplog.set_level(logging.DEBUG, logger="imapclient.imaplib")
    with mail_imap.connect(mailbox) as client:
        client.select_folder("INBOX", readonly=True)
    assert any("SELECT" in r.getMessage() for r in caplog.records if r.name == "imapclient.imaplib")
