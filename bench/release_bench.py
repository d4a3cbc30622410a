"""Release figures: from `manage.py release` to the new code serving, and requests failed meanwhile.

    .venv/bin/python bench/release_bench.py [--switches 4] [--clients 4]

Builds two release sources from this repository (the second answers /health/live with a
build marker), makes the first current, starts `manage.py serve` (role all: Gunicorn and the
job cluster) from RELEASES_DIR/current, then releases the two sources alternately while
`--clients` threads send GET /health/live on new connections without pause. For each switch it
prints the release's duration, the time until the first answer from the new release, the
time until the last answer from the old one, and the requests that failed (refused, reset,
timed out or not 200). Uses a temporary SQLite database unless DATABASE_URL is set.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import base_env, free_port, manage  # noqa: E402
from tests.deploys.releasing import Load, reset, serve, source, stop_serve  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--switches", type=int, default=4)
    parser.add_argument("--clients", type=int, default=4)
    options = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="signalserver-release-bench-"))
    root = ROOT / "var" / "release-bench"
    reset(root)
    port = free_port()
    env = base_env(
        DEBUG="false",
        SECRET_KEY="bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
        ALLOWED_HOSTS="localhost",
        LOG_LEVEL="WARNING",
        RELEASES_DIR=str(root),
        PORT=str(port),
        HOST="127.0.0.1",
        SIGNALSERVER_ROLE="all",
        Q_WORKERS="1",
    )
    if not os.environ.get("DATABASE_URL"):
        env.update(DATABASE_URL="", REDIS_URL="", SQLITE_PATH=str(tmp / "bench.sqlite3"))
    sources = [source(tmp / "a"), source(tmp / "b", build="b")]
    started = time.monotonic()
    first = manage(["release", str(sources[0])], env, timeout=1800)
    if first.returncode:
        sys.exit(first.stdout + first.stderr)
    print(f"first release (install included when requirements are new): {time.monotonic() - started:.1f} s")
    web = serve(root, env, log=tmp / "serve.log")
    print(f"serve's output: {tmp / 'serve.log'}")
    url = f"http://127.0.0.1:{port}/health/live"
    try:
        bench(url, env, sources, options)
    finally:
        stop_serve(web)


def bench(url: str, env: dict[str, str], sources: list[Path], options: argparse.Namespace) -> None:
    with Load(url, threads=1) as warmup:
        deadline = time.monotonic() + 120
        while not any(a.status == 200 for a in warmup.answers) and time.monotonic() < deadline:
            time.sleep(0.2)
    print("| switch | release took | new code first answers | old code last answers | requests | failed |")
    print("|---|---|---|---|---|---|")
    sys.stdout.flush()
    for switch in range(1, options.switches + 1):
        new = str(switch + 1)
        with Load(url, threads=options.clients) as load:
            time.sleep(2)
            started = time.monotonic()
            result = manage(["release", str(sources[switch % 2])], env, timeout=900)
            took = time.monotonic() - started
            time.sleep(2)
        if result.returncode:
            sys.exit(result.stdout + result.stderr)
        first_new = load.first_from(new)
        last_old = max((a.at for a in load.answers if a.release not in ("", new)), default=started)
        during = [a for a in load.answers if a.at >= started]
        print(
            f"| {switch} | {took:.2f} s | {first_new.at - started if first_new else float('nan'):.2f} s "
            f"| {last_old - started:.2f} s | {len(during)} | {len([a for a in during if a.status != 200])} |",
            flush=True,
        )
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "releases"], env=env, check=False)


if __name__ == "__main__":
    main()
