"""IDLE latency under the job cluster, as in production: messages at random times, through
IDLE renewals and session hand-overs.

    .venv/bin/python bench/cluster_latency_bench.py [--messages 200] [--gap 1.5] [--session 55] [--renew 30]

The poller runs as scheduled sessions inside `manage.py qcluster` (each POLLER_SESSION_SECONDS,
handing over to the next; IDLE renewed every IMAP_TIMEOUT_SECONDS), the sender delivering to a
local receiver beside it. Messages are appended one at a time after a random pause (uniform
0…--gap s); for each one the script reports APPEND → Email row, next to the server's own IDLE
notification delay measured by a second IDLE connection (the floor), and the distribution.
Shorter --session and --renew put more messages near a renewal or a hand-over.

Uses a temporary SQLite database unless DATABASE_URL is set (then REDIS_URL is used too).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from delivery_bench import ROOT, TMP, Receiver, reset, stop
from django.core.management import call_command
from django.db import connection
from django_q.tasks import async_task
from mail_bench import Account, append_with_floor, fresh_mailbox, order_message, pct, start_server, wait_for_row

from mail.models import Mailbox

CLUSTER_LOG = Path(TMP) / "qcluster.log"


def start_cluster(session: int, renew: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "POLLER_SESSION_SECONDS": str(session),
        "IMAP_TIMEOUT_SECONDS": str(renew),
        "LOG_LEVEL": "INFO",
    }
    log = CLUSTER_LOG.open("w")
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def distribution(name: str, values: list[float]) -> None:
    finite = [v for v in values if v != float("inf")]
    missing = f"  ({len(values) - len(finite)} not recorded)" if len(finite) < len(values) else ""
    print(
        f"  {name:<26} p50 {statistics.median(finite):.3f}  p90 {pct(finite, 90):.3f}  p99 {pct(finite, 99):.3f}"
        f"  max {max(finite):.3f} s{missing}"
    )


def histogram(values: list[float]) -> None:
    edges = [0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 5.0, float("inf")]
    low = 0.0
    for edge in edges:
        n = sum(1 for v in values if low <= v < edge)
        label = f"{low:.2f} to {edge:.2f} s" if edge != float("inf") else f"{low:.2f} s and more"
        print(f"    {label:<18} {n:4d} {'#' * round(60 * n / len(values))}")
        low = edge


def run(count: int, gap: float, session: int, renew: int) -> None:
    receiver = Receiver()
    account = Account(start_server())
    account.empty()
    fresh_mailbox(account)
    reset(receiver)  # after fresh_mailbox: the local receiver is the endpoint, the queue is empty
    box = Mailbox.objects.get(name="bench")
    cluster = start_cluster(session, renew)
    async_task("mail.tasks.poll_mailbox", box.pk, 0, task_name="poll bench")
    while not Mailbox.objects.filter(pk=box.pk, last_good_cycle__isnull=False).exists():
        time.sleep(0.05)
    observer = account.client()
    observer.select_folder("INBOX", readonly=True)
    appender = account.client()
    rng = random.Random(20261127)
    floor, ours = [], []
    started = time.perf_counter()
    for n in range(count):
        time.sleep(rng.uniform(0, gap))
        raw = order_message(n)
        msgid = raw.split(b"Message-ID: ", 1)[1].split(b"\n", 1)[0].strip().decode()
        t0, seen = append_with_floor(observer, appender, raw)
        floor.append(seen)
        ours.append(wait_for_row(msgid, t0))
    elapsed = time.perf_counter() - started
    stop(cluster)
    sessions = CLUSTER_LOG.read_text().count("Singleton lock acquired")
    observer.logout()
    appender.logout()
    print(f"{count} messages at random times over {elapsed:.0f} s under `manage.py qcluster`")
    print(f"  {sessions} poller sessions (POLLER_SESSION_SECONDS={session}), IDLE renewed every {renew} s")
    distribution("server IDLE notification", floor)
    distribution("Email row recorded", ours)
    gaps = [o - f for o, f in zip(ours, floor, strict=True)]
    distribution("ours minus floor", gaps)
    print("  Email row recorded, distribution:")
    histogram(ours)
    print(f"  cluster log: {CLUSTER_LOG}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--gap", type=float, default=1.5, help="longest random pause between messages (s)")
    parser.add_argument("--session", type=int, default=55, help="POLLER_SESSION_SECONDS")
    parser.add_argument("--renew", type=int, default=30, help="IMAP_TIMEOUT_SECONDS (the IDLE renewal)")
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    print(f"database: {connection.vendor}; broker: {'redis' if os.environ.get('REDIS_URL') else 'orm'}")
    run(args.messages, args.gap, args.session, args.renew)


if __name__ == "__main__":
    main()
