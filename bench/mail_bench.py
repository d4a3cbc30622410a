"""Mail pipeline figures against the Dovecot test server.

    .venv/bin/python bench/mail_bench.py [--latency N] [--backlog N] [--big-mb N]

1. IDLE latency: APPEND → Email row (p50/p99), next to the server's own IDLE notification
   delay measured in the same run by a second IDLE connection.
2. Backlog: N messages ingested into Email rows (messages/s), next to the raw FETCH rate and
   the bare stdlib parse rates (compat32 and policy.default) of the same messages.
3. Peak RSS of `manage.py poll --once` ingesting one large message.

Uses a temporary SQLite database unless DATABASE_URL is set, and the test server's second
account (its INBOX is emptied).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TMP = tempfile.mkdtemp(prefix="signalserver-bench-")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signalserver.settings")
# Production mode: DEBUG would keep every query (and its 25 MB parameters) in memory.
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
os.environ.setdefault("ALLOWED_HOSTS", "localhost")
os.environ.setdefault("LOG_LEVEL", "WARNING")
if not os.environ.get("DATABASE_URL"):
    os.environ.setdefault("SQLITE_PATH", f"{TMP}/bench.sqlite3")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from imapclient import IMAPClient  # noqa: E402

from mail.models import Email, Mailbox  # noqa: E402
from mail.parsing import extract_bodies, parse_message  # noqa: E402
from mail.poller import run_session  # noqa: E402

TOOL = Path(os.environ.get("IMAP_TEST_SERVER", ROOT / "scripts" / "imap-test-server"))


def start_server() -> dict[str, str]:
    with tempfile.TemporaryFile("w+") as out:
        subprocess.run([str(TOOL), "start"], stdout=out, stderr=subprocess.DEVNULL, check=True)
        out.seek(0)
        return dict(line.strip().split("=", 1) for line in out if "=" in line)


def order_message(n: int, size_kb: float = 7.5) -> bytes:
    """A French multipart notification of about `size_kb` KB, like the real orders."""
    m = MIMEMultipart("alternative")
    # Two text parts, base64-encoded on the wire (4/3 larger).
    filler = "Merci de votre confiance. " * int(size_kb * 1024 / 2 / 26 / 1.52)
    plain = f"Bonjour,\nlot {n} à faire pour 14h30.\nhttps://www.dropbox.com/scl/fo/b{n}/AA?rlkey=k{n}&dl=0\n{filler}"
    html = f"<p>Bonjour,</p><p>lot {n} &agrave; faire pour 14h30.</p><a href='https://www.dropbox.com/scl/fo/b{n}/AA?rlkey=k{n}&amp;dl=0'>x</a><p>{filler}</p>"
    m.attach(MIMEText(plain, "plain", "utf-8"))
    m.attach(MIMEText(html, "html", "utf-8"))
    m["Subject"] = f"Média Solution - Missions Recadrage - Lot {n}"
    m["From"] = "missions@media-solution.example"
    m["Message-ID"] = f"<bench-{n}-{time.time_ns()}@bench>"
    m["Date"] = "Tue, 03 Nov 2026 09:15:00 +0100"
    return m.as_bytes()


class Account:
    def __init__(self, env: dict[str, str]) -> None:
        self.host, self.port = "127.0.0.1", int(env["IMAP_PLAIN_PORT"])
        self.user, self.password = env["IMAP_SECOND_USER"], "secret"
        self.dir = env["IMAP_TEST_DIR"]

    def client(self) -> IMAPClient:
        c = IMAPClient(self.host, port=self.port, ssl=False, timeout=60)
        c.login(self.user, self.password)
        return c

    def empty(self) -> None:
        c = self.client()
        c.select_folder("INBOX")
        uids = c.search(["ALL"])
        for start in range(0, len(uids), 1000):
            c.delete_messages(uids[start : start + 1000])
        c.expunge()
        c.logout()


def fresh_mailbox(account: Account) -> Mailbox:
    import datetime as dt

    from delivery.models import Delivery, Endpoint

    if django.db.connection.vendor == "postgresql":
        # Each run starts from empty tables: dead rows of earlier runs would slow it down.
        with django.db.connection.cursor() as cursor:
            cursor.execute("TRUNCATE mail_mailbox, mail_email, delivery_endpoint RESTART IDENTITY CASCADE")
    Delivery.objects.all().delete()
    Email.objects.all().delete()
    Mailbox.objects.only("pk").delete()
    # A default endpoint, so ingestion includes writing the outbox rows (nothing sends them here).
    Endpoint.objects.only("pk").delete()
    Endpoint.objects.create(name="bench", url="https://receiver.invalid/hook", is_default=True)

    return Mailbox.objects.create(
        name="bench",
        host=account.host,
        port=account.port,
        use_ssl=False,
        username=account.user,
        password=account.password,
        active_days="0,1,2,3,4,5,6",
        active_start=dt.time(0),
        active_end=dt.time.max,
    )


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def append_with_floor(observer: IMAPClient, appender: IMAPClient, raw: bytes) -> tuple[float, float]:
    """APPEND `raw`: when it started, and how long the server took to tell `observer` (in IDLE)."""
    observer.idle()
    t0 = time.perf_counter()
    appender.append("INBOX", raw)
    while not any(r[1:2] == (b"EXISTS",) for r in observer.idle_check(timeout=5)):
        pass
    floor = time.perf_counter() - t0
    observer.idle_done()
    return t0, floor


def wait_for_row(msgid: str, t0: float, timeout: float = 120) -> float:
    """Seconds from `t0` until the message's Email row exists (inf: not within `timeout`)."""
    while time.perf_counter() - t0 < timeout:
        if Email.objects.filter(message_id=msgid).exists():
            return time.perf_counter() - t0
        time.sleep(0.002)
    return float("inf")


def latency(account: Account, count: int) -> None:
    account.empty()
    box = fresh_mailbox(account)
    stop = threading.Event()
    poller = threading.Thread(target=run_session, args=(box, stop))
    poller.start()
    observer = account.client()
    observer.select_folder("INBOX", readonly=True)
    appender = account.client()
    while not Mailbox.objects.get().last_good_cycle:
        time.sleep(0.05)
    floor, ours = [], []
    for n in range(count):
        raw = order_message(n)
        t0, seen = append_with_floor(observer, appender, raw)
        floor.append(seen)
        ours.append(wait_for_row(email.message_from_bytes(raw)["Message-ID"], t0))
        time.sleep(0.2)
    stop.set()
    poller.join()
    observer.logout()
    appender.logout()
    print(f"IDLE latency over {count} messages (APPEND → ...)")
    print(f"  server IDLE notification: p50 {statistics.median(floor):.3f} s  p99 {pct(floor, 99):.3f} s")
    print(f"  Email row recorded:       p50 {statistics.median(ours):.3f} s  p99 {pct(ours, 99):.3f} s")
    gaps = [o - f for o, f in zip(ours, floor, strict=True)]
    print(f"  ours minus floor:         p50 {statistics.median(gaps):.3f} s  p99 {pct(gaps, 99):.3f} s")


def backlog(account: Account, count: int) -> None:
    account.empty()
    messages = [order_message(n) for n in range(count)]
    c = account.client()
    t = time.perf_counter()
    for raw in messages:
        c.append("INBOX", raw)
    append_s = time.perf_counter() - t
    c.select_folder("INBOX", readonly=True)
    uids = c.search(["ALL"])
    t = time.perf_counter()
    for start in range(0, len(uids), 200):
        c.fetch(uids[start : start + 200], ["BODY.PEEK[]"])
    fetch_rate = count / (time.perf_counter() - t)
    c.logout()
    t = time.perf_counter()
    for raw in messages:
        extract_bodies(email.message_from_bytes(raw), 1024 * 1024)
    compat_rate = count / (time.perf_counter() - t)
    t = time.perf_counter()
    for raw in messages:
        parse_message(raw)
    ours_rate = count / (time.perf_counter() - t)
    sample = messages[: min(count, 2000)]
    t = time.perf_counter()
    for raw in sample:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        for part in msg.walk():
            if part.get_content_type() in ("text/plain", "text/html"):
                part.get_content()
    default_rate = len(sample) / (time.perf_counter() - t)
    fresh_mailbox(account)
    t = time.perf_counter()
    call_command("poll", once=True, now=True, stdout=open(os.devnull, "w"))
    ingest = time.perf_counter() - t
    recorded = Email.objects.count()
    size = sum(map(len, messages)) / count / 1024
    print(f"Backlog of {count} messages of {size:.1f} KB (APPEND took {append_s:.1f} s)")
    print(f"  raw FETCH BODY.PEEK[]:         {fetch_rate:8.0f} messages/s")
    print(f"  stdlib parse, compat32:        {compat_rate:8.0f} messages/s")
    print(f"  stdlib parse, policy.default:  {default_rate:8.0f} messages/s")
    print(f"  parse_message (boundary split, all header fields): {ours_rate:8.0f} messages/s")
    print(f"  ingested into Email rows:      {recorded / ingest:8.0f} messages/s ({recorded} rows in {ingest:.1f} s)")


def big_message(account: Account, megabytes: int) -> None:
    account.empty()
    m = MIMEMultipart("mixed")
    m.attach(MIMEText("Voici les fichiers https://www.dropbox.com/scl/fo/big/AA?rlkey=b&dl=0", "plain", "utf-8"))
    m.attach(MIMEText("<p>" + "x" * (2 * 1024 * 1024) + "</p>", "html", "utf-8"))
    m.attach(MIMEApplication(os.urandom(megabytes * 1024 * 1024), "zip", Name="photos.zip"))
    m["Subject"], m["From"], m["Message-ID"] = "Gros envoi", "a@b.example", f"<big-{time.time_ns()}@bench>"
    raw = m.as_bytes()
    c = account.client()
    c.append("INBOX", raw)
    c.logout()
    fresh_mailbox(account)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # VmHWM: the peak RSS of the child's own image (ru_maxrss would include this process's peak).
    peak_rss = "print([line.split()[1] for line in open('/proc/self/status') if line.startswith('VmHWM')][0])"
    run = {"env": env, "capture_output": True, "text": True, "check": True, "cwd": ROOT}
    baseline = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {peak_rss}"], **run)
    code = (
        "import django; django.setup(); from django.core.management import call_command; "
        f"call_command('poll', once=True, now=True); {peak_rss}"
    )
    out = subprocess.run([sys.executable, "-c", code], **run)
    peak = out.stdout.split()[-1]
    email_row = Email.objects.get()
    print(f"Large message: {len(raw) / 1024 / 1024:.1f} MB on the wire")
    print(f"  peak RSS of `poll --once`: {int(peak) / 1024:.0f} MB")
    print(f"  (the same process after django.setup() alone: {int(baseline.stdout.split()[-1]) / 1024:.0f} MB)")
    print(f"  recorded: decision={email_row.decision}, links={len(email_row.links)}, text={len(email_row.text)} chars")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=int, default=50)
    parser.add_argument("--backlog", type=int, default=10000)
    parser.add_argument("--big-mb", type=int, default=25)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    account = Account(start_server())
    print(f"database: {django.db.connection.vendor}; python {sys.version.split()[0]}; {os.cpu_count()} cores")
    if args.latency:
        latency(account, args.latency)
    if args.backlog:
        backlog(account, args.backlog)
    if args.big_mb:
        big_message(account, args.big_mb)
    account.empty()


if __name__ == "__main__":
    main()
