"""Dashboard, /metrics and /api/metrics under `wrk`, with 100,000 emails, on the production settings.

    .venv/bin/python bench/dashboard_bench.py [--emails 100000] [--duration 10] [--reuse] [--changing]

Seeds a history (bench/seed.py: emails over 60 days, their deliveries, attempts and R2
transfers), signs a staff user in, starts Gunicorn from gunicorn.conf.py (DEBUG=false, the
default 2 workers x 2 threads, static files collected), then runs `wrk` (Debian package
`wrk`) against each view with 1 and 8 connections and prints p50, p99 and requests/s.
Requests carry `X-Forwarded-Proto: https`, as behind the proxy in production.

The dashboard keeps the parts it drew from the rows while the database shows the same rows
(signalserver/snapshot.py): with no writes, a view reads the kept parts. `--changing` commits a
change every second meanwhile, as a running poller does, so each connection draws every part
again once a second; the CPU table gives both costs, kept and drawn.

Uses a temporary SQLite database unless DATABASE_URL is set (give REDIS_URL too for the
production cache); `--reuse` keeps a database already seeded with enough emails.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TMP = Path(os.environ.get("BENCH_DIR") or tempfile.mkdtemp(prefix="signalserver-bench-"))
ENV = {
    "DJANGO_SETTINGS_MODULE": "signalserver.settings",
    "DEBUG": "false",
    "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
    "ALLOWED_HOSTS": "localhost",
    "LOG_LEVEL": "WARNING",
}
for key, value in ENV.items():
    os.environ.setdefault(key, value)
if not os.environ.get("DATABASE_URL"):
    os.environ.setdefault("SQLITE_PATH", str(TMP / "bench.sqlite3"))

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.seed import seed  # noqa: E402
from mail.models import Email, Mailbox  # noqa: E402

VIEWS = ["/", "/?q=Lot&page=50", "/?decision=delivered&page=2000", "/?q=nomatch", "/metrics", "/api/metrics"]
LATENCY_RE = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def prepare(emails: int, reuse: bool) -> str:
    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)  # production pages name hashed files
    have = Email.objects.count()
    if not reuse or have < emails:
        started = time.monotonic()
        seed(emails - have)
        print(f"seeded {emails - have:,} emails in {time.monotonic() - started:.0f} s", flush=True)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    user, _ = User.objects.get_or_create(username="bench", defaults={"is_staff": True})
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def cpu_per_request(views: list[str], session: str, repeat: int = 20) -> None:
    """CPU time of one request in this process (Django, templates and, on SQLite, the queries):
    a figure that a busy neighbour on the machine disturbs far less than latencies. "kept" is a
    view of unchanged rows (signalserver/snapshot.py); "drawn" a view right after a commit, every
    part drawn again (measured inside a transaction, where nothing is kept)."""
    client = Client(HTTP_X_FORWARDED_PROTO="https", HTTP_HOST="localhost")
    client.cookies["sessionid"] = session
    print("| view | CPU, kept | queries | CPU, drawn | queries |\n|---|---|---|---|---|")
    for view in views:
        assert client.get(view).status_code == 200, view
        row = [f"`{view}`"]
        for drawn in (False, True):
            with transaction.atomic() if drawn else contextlib.nullcontext():
                started = time.process_time()
                for _ in range(repeat):
                    client.get(view)
                cpu = (time.process_time() - started) / repeat * 1000
                with CaptureQueriesContext(connection) as queries:
                    client.get(view)
            row += [f"{cpu:.1f} ms", f"{len(queries)}"]
        print(f"| {' | '.join(row)} |", flush=True)


def keep_changing(stop: threading.Event, every: float = 1.0) -> None:
    """Commits a change once a second, as a running poller records its good cycles: every
    connection's kept parts of the dashboard are drawn again after each one."""
    mailbox = Mailbox.objects.order_by("pk").first()
    while not stop.wait(every):
        Mailbox.objects.filter(pk=mailbox.pk).update(last_good_cycle=timezone.now())
    connection.close()


def start_gunicorn(port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "gunicorn.conf.py",
            "--access-logfile",
            "/dev/null",
            "signalserver.wsgi",
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        probe = subprocess.run(["curl", "-sf", f"http://127.0.0.1:{port}/health/live"], capture_output=True)
        if probe.returncode == 0:
            return proc
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("Gunicorn did not start")


def wrk(url: str, connections: int, seconds: int, session: str) -> tuple[float, float, float]:
    threads = min(connections, 2)
    result = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-H",
            f"Cookie: sessionid={session}",
            "-H",
            "X-Forwarded-Proto: https",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    if "Non-2xx" in result.stdout:
        raise SystemExit(f"{url} answered errors:\n{result.stdout}")
    latency = {p: float(v) * UNITS[u] for p, v, u in LATENCY_RE.findall(result.stdout)}
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", result.stdout).group(1))  # type: ignore[union-attr]
    return latency["50"], latency["99"], rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--emails", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--views", nargs="*", default=VIEWS)
    parser.add_argument("--cpu-only", action="store_true", help="only the CPU time per request, no wrk")
    parser.add_argument(
        "--changing", action="store_true", help="commit a change once a second meanwhile (as a running poller does)"
    )
    args = parser.parse_args()
    if not args.cpu_only and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    session = prepare(args.emails, args.reuse)
    cpu_per_request(args.views, session)
    if args.cpu_only:
        return
    port = int(os.environ.get("BENCH_PORT", "8099"))
    proc = start_gunicorn(port)
    database = f"{connection.vendor}" + (" + Redis" if settings.REDIS_URL else "")
    changing = ", a change committed every second" if args.changing else ""
    print(f"{Email.objects.count():,} emails, {database}, Gunicorn workers=2 threads=2{changing}", flush=True)
    print("| view | clients | p50 | p99 | req/s |\n|---|---|---|---|---|")
    stop = threading.Event()
    if args.changing:
        threading.Thread(target=keep_changing, args=(stop,), daemon=True).start()
    try:
        for view in args.views:
            url = f"http://127.0.0.1:{port}{view}"
            wrk(url, 2, 2, session)  # warm up each worker
            for clients in (1, 8):
                p50, p99, rate = wrk(url, clients, args.duration, session)
                print(f"| `{view}` | {clients} | {p50:.1f} ms | {p99:.1f} ms | {rate:.0f} |", flush=True)
    finally:
        stop.set()
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
