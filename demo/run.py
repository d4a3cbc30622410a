"""`make demo`: the whole service on this machine, fed with sample order emails.

    .venv/bin/python -m demo            # start everything, send the samples, keep running
    .venv/bin/python -m demo send       # while it runs: append one more order email

It starts the Dovecot test server (IMAP_TEST_SERVER, else the repository's
scripts/imap-test-server; IMAP_TEST_DIR, IMAP_TEST_PORT and IMAP_TEST_SSL_PORT are
honoured), a receiver that verifies each webhook's signature and prints it, and the
service itself (`manage.py serve`: web + jobs) on a fresh SQLite database in DEMO_DIR
(default var/demo). It creates a mailbox, an endpoint, a routing rule and a demo operator,
appends about thirty sample emails, shows the decision each one reached, and prints the
dashboard address with a sign-in link. Ctrl-C stops what it started.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from demo.samples import Sample, demo_samples, outside_window_samples, recadrage

ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = Path(os.environ.get("DEMO_DIR") or ROOT / "var" / "demo").resolve()
STATE_FILE = DEMO_DIR / "demo.json"
DECISION_TIMEOUT = 120


@dataclass
class State:
    """What `python -m demo send` needs to reach the running demo."""

    imap_port: int
    imap_user: str
    imap_password: str
    web_url: str
    next_lot: int = 300


def imap_tool() -> Path:
    if os.environ.get("IMAP_TEST_SERVER"):
        return Path(os.environ["IMAP_TEST_SERVER"])
    return ROOT / "scripts" / "imap-test-server"


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pick_port(name: str, preferred: int) -> int:
    """The port in env `name`, else `preferred` when it is free, else any free port."""
    if os.environ.get(name):
        return int(os.environ[name])
    return preferred if port_free(preferred) else free_port()


@dataclass
class ImapServer:
    directory: str
    port: int
    ssl_port: int
    started: bool = False

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "IMAP_TEST_DIR": self.directory,
            "IMAP_TEST_PORT": str(self.port),
            "IMAP_TEST_SSL_PORT": str(self.ssl_port),
        }

    def start(self) -> dict[str, str]:
        tool = imap_tool()
        if not tool.exists():
            sys.exit(f"The IMAP test server tool is missing ({tool}); set IMAP_TEST_SERVER to its path.")
        status = subprocess.run([str(tool), "status"], env=self.env, capture_output=True, check=False)
        self.started = status.returncode != 0
        # Output goes to a file: Dovecot daemonises with our pipes open, so a pipe would never close.
        with tempfile.TemporaryFile("w+") as out:
            subprocess.run([str(tool), "start"], stdout=out, env=self.env, check=True, timeout=300)
            out.seek(0)
            return dict(line.strip().split("=", 1) for line in out if "=" in line)

    def stop(self) -> None:
        if self.started:
            subprocess.run([str(imap_tool()), "stop"], env=self.env, capture_output=True, check=False, timeout=60)


def service_env(web_port: int) -> dict[str, str]:
    """The embedded default (SQLite, ORM broker), in development mode, on 127.0.0.1."""
    return {
        "DJANGO_SETTINGS_MODULE": "signalserver.settings",
        "DEBUG": "true",
        "DATABASE_URL": "",
        "REDIS_URL": "",
        "SQLITE_PATH": str(DEMO_DIR / "demo.sqlite3"),
        "HOST": "127.0.0.1",
        "PORT": str(web_port),
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{web_port}",
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "INFO"),
        "GUNICORN_WORKERS": "1",
        "PYTHONPATH": str(ROOT),
    }


def fresh_database() -> None:
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        (DEMO_DIR / f"demo.sqlite3{suffix}").unlink(missing_ok=True)


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    import logging

    import django
    from django.core.management import call_command

    django.setup()
    logging.disable(logging.INFO)  # this process prints its own progress; the service logs to service.log
    call_command("migrate", verbosity=0)


def create_world(imap: dict[str, str], receiver_url: str, secret: str) -> Any:
    """The demo operator, the mailbox, the endpoint and a routing rule for urgent orders."""
    from django.contrib.auth import get_user_model

    from delivery.models import Endpoint, RoutingRule, RuleCondition, SendingSchedule
    from mail.models import Mailbox

    operator = get_user_model()._default_manager.create_superuser("demo", "demo@example.test", None)
    endpoint = Endpoint.objects.create(name="demo receiver", url=receiver_url, secret=secret, is_default=True)
    rule = RoutingRule.objects.create(name="Urgent orders", endpoint=endpoint, priority="high", stop_processing=True)
    RuleCondition.objects.create(rule=rule, field="subject", operator="contains", value="URGENCE")
    SendingSchedule.load()
    Mailbox.objects.create(
        name="demo",
        host="127.0.0.1",
        port=int(imap["IMAP_PLAIN_PORT"]),
        use_ssl=False,
        username=imap["IMAP_USER"],
        password=imap["IMAP_PASSWORD"],
        active_days="0,1,2,3,4,5,6",
        active_start=dt.time(0),
        active_end=dt.time.max,
    )
    return operator


class Processes:
    """Child processes, stopped in reverse order; each in its own session so Ctrl-C reaches
    them only through `stop`."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], env: dict[str, str], **options: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True, **options)
        self.running.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.running):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.running):
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def start_receiver(processes: Processes, env: dict[str, str], secret: str) -> str:
    argv = [sys.executable, "-m", "demo.receiver", "--verify", "--port", str(free_port())]
    proc = processes.start(argv, {**env, "DEMO_WEBHOOK_SECRET": secret}, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().split()[-1]
    threading.Thread(target=_echo, args=(proc.stdout,), daemon=True).start()
    return url


def _echo(stream: Any) -> None:
    for line in iter(stream.readline, b""):
        sys.stdout.write(line.decode("utf-8", "replace"))
        sys.stdout.flush()


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise SystemExit(f"The demo gave up waiting for {what} after {timeout:.0f} s.")


def start_service(processes: Processes, env: dict[str, str], web_url: str) -> None:
    import urllib.error
    import urllib.request

    from django_q.tasks import async_task

    from mail.models import Mailbox

    log = (DEMO_DIR / "service.log").open("ab")
    argv = [sys.executable, "manage.py", "serve", "--skip-migrate"]
    serve = processes.start(argv, {**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)

    def web_up() -> bool:
        if serve.poll() is not None:
            raise SystemExit(f"The service stopped (exit {serve.returncode}); see {DEMO_DIR / 'service.log'}")
        try:
            with urllib.request.urlopen(web_url + "health/live", timeout=2):  # noqa: S310 (our own http URL)
                return True
        except (urllib.error.URLError, OSError):
            return False

    wait_for(web_up, 60, "the web server")
    mailbox = Mailbox.objects.get()
    # The scheduler starts the poller within a minute; the demo does not wait for it.
    async_task("mail.tasks.poll_mailbox", mailbox.pk, 0, task_name="poll demo")
    wait_for(lambda: Mailbox.objects.filter(last_good_cycle__isnull=False).exists(), 60, "the mailbox poller")


def append(port: int, user: str, password: str, samples: list[Sample]) -> None:
    from imapclient import IMAPClient

    client = IMAPClient("127.0.0.1", port=port, ssl=False, timeout=30)
    client.login(user, password)
    for sample in samples:
        client.append("INBOX", sample.raw)
    client.logout()


def message_id(sample: Sample) -> str:
    import email

    return str(email.message_from_bytes(sample.raw)["Message-ID"])


def decisions(samples: list[Sample]) -> dict[str, list[str]]:
    from mail.models import Email

    ids = [message_id(s) for s in samples]
    found: dict[str, list[str]] = {}
    for mid, decision in Email.objects.filter(message_id__in=ids).values_list("message_id", "decision"):
        found.setdefault(mid, []).append(decision)
    return found


def reached(sample: Sample, found: dict[str, list[str]]) -> bool:
    got = found.get(message_id(sample), [])
    return len(got) == 1 and (not sample.expected or got[0] == sample.expected)


def check(samples: list[Sample]) -> bool:
    """Wait until each sample reached its decision (or the time is up); print each one."""
    settled = [s for s in samples if s.expected]
    deadline = time.monotonic() + DECISION_TIMEOUT
    while time.monotonic() < deadline and not all(reached(s, decisions(settled)) for s in settled):
        time.sleep(0.1)
    found = decisions(samples)
    for sample in samples:
        got = found.get(message_id(sample), [])
        mark = "✓" if reached(sample, found) else "✗"
        expected = sample.expected or "recorded once"
        shown = "recorded once" if not sample.expected and len(got) == 1 else ", ".join(got) or "not recorded"
        print(f"  {mark} {shown:<25} {sample.label}" + ("" if mark == "✓" else f" (expected {expected})"))
    return all(reached(s, found) for s in samples)


def close_window() -> tuple[str, str]:
    """A sending window that opens in two hours (the working day is over); returns the old one."""
    from delivery.models import SendingSchedule

    schedule = SendingSchedule.load()
    before = schedule.window_start, schedule.window_end
    local = dt.datetime.now(schedule.tz)
    schedule.window_start = f"{(local + dt.timedelta(hours=2)):%Hh%M}"
    schedule.window_end = f"{(local + dt.timedelta(hours=10)):%Hh%M}"
    schedule.save()
    return before


def reopen_window(window: tuple[str, str]) -> None:
    from delivery.models import SendingSchedule

    schedule = SendingSchedule.load()
    schedule.window_start, schedule.window_end = window
    schedule.save()


def sign_in_link(operator: Any) -> str:
    from signalserver.accounts import magic_link_url
    from signalserver.models import MagicLink

    _, token = MagicLink.issue(operator, ttl_seconds=3600, created_by="demo")
    return magic_link_url(token)


def send_samples(state: State) -> bool:
    started = time.monotonic()
    samples = demo_samples()
    print(f"\nAppending {len(samples)} sample emails (the sending window is open):")
    append(state.imap_port, state.imap_user, state.imap_password, samples)
    ok = check(samples)
    window = close_window()
    late = outside_window_samples()
    print(f"\nThe sending window closes (the day is over); appending {len(late)} more:")
    append(state.imap_port, state.imap_user, state.imap_password, late)
    ok = check(late) and ok
    reopen_window(window)
    total = len(samples) + len(late)
    verdict = "reached their expected decision" if ok else "did NOT all reach their expected decision"
    took = time.monotonic() - started
    print(f"\nAll {total} sample emails {verdict} in {took:.1f} s (DEMO CHECK {'OK' if ok else 'FAILED'}).")
    return ok


def introduce(state: State, imap_dir: str, receiver_url: str) -> None:
    print("signalserver demo")
    print(f"  IMAP test server  127.0.0.1:{state.imap_port} ({state.imap_user} / {state.imap_password}), in {imap_dir}")
    print(f"  receiver          {receiver_url}: verifies each signature and prints the webhook")
    print(f"  service           {state.web_url} (web + jobs; SQLite and logs in {DEMO_DIR})")


def farewell(state: State, link: str) -> None:
    print(f"\nDashboard: {state.web_url}  (admin: {state.web_url}admin/)")
    print(f"Sign in as the demo operator with this one-time link, valid for an hour:\n  {link}")
    print("Send more mail while it runs, and watch it reach the receiver and the dashboard:")
    print("  .venv/bin/python -m demo send")
    print(f"  (or any mail client: IMAP 127.0.0.1:{state.imap_port}, {state.imap_user} / {state.imap_password})")
    print("Ctrl-C stops the demo.", flush=True)


def run() -> None:
    fresh_database()
    web_port = pick_port("PORT", 8000)
    imap = ImapServer(
        os.environ.get("IMAP_TEST_DIR") or str(Path(tempfile.gettempdir()) / "signalserver-demo-imap"),
        pick_port("IMAP_TEST_PORT", 3143),
        pick_port("IMAP_TEST_SSL_PORT", 3993),
    )
    processes = Processes()
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        imap_env = imap.start()
        env = service_env(web_port)
        setup_django(env)
        from delivery.models import new_signing_secret

        secret = new_signing_secret()  # the endpoint's, handed to the receiver that checks it
        receiver_url = start_receiver(processes, {**os.environ, **env}, secret)
        operator = create_world(imap_env, receiver_url, secret)
        state = State(imap.port, imap_env["IMAP_USER"], imap_env["IMAP_PASSWORD"], f"http://127.0.0.1:{web_port}/")
        STATE_FILE.write_text(json.dumps(asdict(state)))
        introduce(state, imap.directory, receiver_url)
        _empty_inbox(state)
        start_service(processes, env, state.web_url)
        send_samples(state)
        farewell(state, sign_in_link(operator))
        stop.wait()
        print("\nStopping the demo…", flush=True)
    finally:
        processes.stop()
        imap.stop()
        STATE_FILE.unlink(missing_ok=True)


def _empty_inbox(state: State) -> None:
    from imapclient import IMAPClient

    client = IMAPClient("127.0.0.1", port=state.imap_port, ssl=False, timeout=30)
    client.login(state.imap_user, state.imap_password)
    client.select_folder("INBOX")
    uids = client.search(["ALL"])
    if uids:
        client.delete_messages(uids)
        client.expunge()
    client.logout()


def send_one() -> None:
    """Append one more order email to the running demo's mailbox."""
    if not STATE_FILE.exists():
        sys.exit("The demo is not running (start it with: make demo).")
    state = State(**json.loads(STATE_FILE.read_text()))
    state.next_lot += 1
    STATE_FILE.write_text(json.dumps(asdict(state)))
    raw = recadrage(state.next_lot, "wetransfer", "à faire pour 17h30")
    sample = Sample("your order", raw, f"Média Solution - Missions Recadrage - Lot {state.next_lot}", "delivered")
    append(state.imap_port, state.imap_user, state.imap_password, [sample])
    print(f"Appended “{sample.subject}”: see the demo's receiver output, and the dashboard at {state.web_url}")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args == ["send"]:
        send_one()
    elif not args:
        run()
    else:
        sys.exit("usage: python -m demo [send]")
