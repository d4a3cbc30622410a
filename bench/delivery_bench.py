"""Delivery figures: webhook throughput and end-to-end latency, against real local servers.

    .venv/bin/python bench/delivery_bench.py [--deliveries 1000] [--latency 50]

1. Throughput: N deliveries to a local receiver, sent by `manage.py qcluster` with the
   default worker count (deliveries/s from the first enqueue to the last delivered).
2. End to end with IDLE: APPEND → signed webhook received (p50/p99), next to the IMAP
   server's own IDLE notification delay measured in the same run. The poller runs as
   `manage.py poll`, sending through `manage.py qcluster`, as in production.

Uses a temporary SQLite database unless DATABASE_URL is set (then REDIS_URL is used too).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TMP = tempfile.mkdtemp(prefix="signalserver-bench-")
os.environ.update(
    DJANGO_SETTINGS_MODULE="signalserver.settings",
    DEBUG="false",
    SECRET_KEY=os.environ.get("SECRET_KEY", "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"),
    ALLOWED_HOSTS="localhost",
    LOG_LEVEL="WARNING",
    WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
)
if not os.environ.get("DATABASE_URL"):
    os.environ.setdefault("SQLITE_PATH", f"{TMP}/bench.sqlite3")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django_q.brokers import get_broker  # noqa: E402

from delivery.models import Delivery, Endpoint  # noqa: E402
from delivery.outbox import kick_sender, plan  # noqa: E402
from mail.models import Email, Mailbox  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from mail_bench import Account, append_with_floor, fresh_mailbox, order_message, pct, start_server  # noqa: E402


class Receiver:
    """A keep-alive HTTP/1.1 receiver that notes when each webhook-id arrived."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.subjects: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else the body waits 40 ms for a delayed ACK

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                now = time.perf_counter()
                receiver.arrivals.setdefault(self.headers["webhook-id"], now)
                receiver.subjects.setdefault(body[:400].decode("utf-8", "replace"), now)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "17")
                self.end_headers()
                self.wfile.write(b'{"success": true}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "manage.py", *args], cwd=ROOT, env=child_env(), start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def reset(receiver: Receiver) -> Endpoint:
    from django_q.models import Schedule

    # Only the kicks start the sender: a scheduled run at cluster start would send before the clock starts.
    Schedule.objects.all().delete()
    Delivery.objects.all().delete()
    Email.objects.all().delete()
    Mailbox.objects.filter(name="bench-out").delete()
    Endpoint.objects.only("pk").delete()
    get_broker().purge_queue()  # jobs queued by earlier runs (the mail bench kicks the sender)
    return Endpoint.objects.create(name="bench", url=receiver.url, is_default=True)


def throughput(count: int) -> None:
    receiver = Receiver()
    reset(receiver)
    box = Mailbox.objects.create(name="bench-out", host="imap.invalid", username="u", password="p")
    with transaction.atomic():
        for n in range(count):
            email = Email.objects.create(
                mailbox=box,
                identity=f"<{n}@bench>",
                email_id=f"{n:032x}",
                subject=f"Lot {n}",
                sender="a@b.example",
                text="https://fromsmash.com/Bench1 " + "x" * 2000,
                links=[{"provider": "fromsmash", "raw_url": "https://fromsmash.com/Bench1"}],
                decision="accepted",
            )
            plan(email, kick=False)
    cluster = start(["qcluster"])
    time.sleep(3)  # the cluster's start-up is not part of the sending rate
    started = time.perf_counter()
    from django.conf import settings

    for _ in range(settings.Q_WORKERS):
        kick_sender()
    while len(receiver.arrivals) < count and time.perf_counter() - started < 300:
        time.sleep(0.05)
    elapsed = max(receiver.arrivals.values()) - started
    stop(cluster)
    delivered = Delivery.objects.filter(status="delivered").count()
    print(f"Throughput: {len(receiver.arrivals)} webhooks received ({delivered} delivered rows) in {elapsed:.2f} s")
    print(f"  {len(receiver.arrivals) / elapsed:.0f} deliveries/s with Q_WORKERS={settings.Q_WORKERS}")


def latency(count: int) -> None:
    receiver = Receiver()
    account = Account(start_server())
    account.empty()
    fresh_mailbox(account)
    reset(receiver)  # after fresh_mailbox, which sets up an endpoint of its own
    cluster, poller = start(["qcluster"]), start(["poll"])
    while not Mailbox.objects.filter(name="bench", last_good_cycle__isnull=False).exists():
        time.sleep(0.05)
    time.sleep(3)
    observer = account.client()
    observer.select_folder("INBOX", readonly=True)
    appender = account.client()
    floor, ours = [], []
    for n in range(count):
        raw = order_message(n)
        marker = f'Lot {n}"'
        t0, seen = append_with_floor(observer, appender, raw)
        floor.append(seen)
        deadline = time.perf_counter() + 30
        while time.perf_counter() < deadline:
            hit = next((t for body, t in list(receiver.subjects.items()) if marker in body), None)
            if hit:
                ours.append(hit - t0)
                break
            time.sleep(0.002)
        time.sleep(0.2)
    stop(poller)
    stop(cluster)
    observer.logout()
    appender.logout()
    print(f"End to end over {len(ours)} messages (APPEND → signed webhook received)")
    print(f"  server IDLE notification: p50 {statistics.median(floor):.3f} s  p99 {pct(floor, 99):.3f} s")
    print(f"  webhook received:         p50 {statistics.median(ours):.3f} s  p99 {pct(ours, 99):.3f} s")
    gaps = [o - f for o, f in zip(ours, floor, strict=False)]
    print(f"  ours minus floor:         p50 {statistics.median(gaps):.3f} s  p99 {pct(gaps, 99):.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deliveries", type=int, default=1000)
    parser.add_argument("--latency", type=int, default=50)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    from django.db import connection

    print(f"database: {connection.vendor}; broker: {'redis' if os.environ.get('REDIS_URL') else 'orm'}")
    if args.deliveries:
        throughput(args.deliveries)
    if args.latency:
        latency(args.latency)


if __name__ == "__main__":
    main()
