from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from django.conf import settings
from django.db import connection

from tests.delivery.receiver import Receiver

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")
# Set where every test must run (the GitHub workflow): a skipped test counts as a failure there.
REQUIRE_ALL_TESTS = os.environ.get("REQUIRE_ALL_TESTS", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if REQUIRE_ALL_TESTS and report.skipped:
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, but REQUIRE_ALL_TESTS is set so every test must run: {reason}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env(**overrides: str) -> dict[str, str]:
    """A clean environment for a child process, without this process's test settings."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "REDIS_URL", "DATABASE_URL")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PYTHONPATH"] = str(ROOT)
    env.update(overrides)
    return {k: v for k, v in env.items() if v is not None}


def child_database_env() -> dict[str, str]:
    """Env that points a child process at this run's test database, with the key to its secrets."""
    db = connection.settings_dict
    keys = {"SECRET_KEY": settings.SECRET_KEY}
    if db["ENGINE"].endswith("sqlite3"):
        return {"SQLITE_PATH": str(db["NAME"]), "DATABASE_URL": "", **keys}
    url = settings.DATABASE_URL.rsplit("/", 1)[0] + "/" + db["NAME"]
    return {"DATABASE_URL": url, **keys}


def manage(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for_http(url: str, timeout: float = 30, proc: subprocess.Popen[bytes] | None = None) -> requests.Response:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before {url} answered")
        try:
            return requests.get(url, timeout=2)
        except (requests.ConnectionError, requests.Timeout) as e:  # not listening yet, or still booting
            last = e
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s: {last}")


@pytest.fixture
def production_env() -> dict[str, str]:
    return base_env(
        DEBUG="false",
        SECRET_KEY="prod-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGH",
        ALLOWED_HOSTS="signal.example.com",
    )


@pytest.fixture
def stop_process() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def session_of(process: Path) -> int | None:
    """The session id of a process (/proc/<pid>), which its descendants keep unless they start
    their own; None once it has ended."""
    try:
        return int((process / "stat").read_text().rsplit(")", 1)[-1].split()[3])
    except (OSError, ValueError, IndexError):
        return None


def wait_until(condition, timeout: float = 30, interval: float = 0.1, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"{message} not met within {timeout} s")


def run_together(task: Callable[[], T], threads: int) -> list[T]:
    """Run `task` in `threads` threads released at the same instant, each on its own database
    connection; what each returned."""
    barrier = threading.Barrier(threads)
    results: list[T] = []

    def run() -> None:
        barrier.wait()
        try:
            results.append(task())
        finally:
            connection.close()

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    return results


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A test that concerns one database, or does not touch the test database at all (the
    # container, the demo, the repository checks), runs in one of the two passes only:
    # the other pass deselects it (a skip would fail where REQUIRE_ALL_TESTS is set).
    vendor = connection.vendor
    kept: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("only_on")
        (deselected if marker and marker.args[0] != vendor else kept).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept
    # Tests marked `last` (the scan of the run's logs) run after every other one.
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)


@pytest.fixture(scope="session", autouse=True)
def _keep_the_run_logs(django_test_environment: None) -> Iterator[None]:
    """Every log record of the run, as production prints it, for the secret scan."""
    import logging

    from tests.logscan import RunLogHandler

    handler = RunLogHandler()
    logging.getLogger().addHandler(handler)
    yield
    logging.getLogger().removeHandler(handler)
    handler.close()


@pytest.fixture(autouse=True)
def _jobs_run_inline() -> Iterator[None]:
    """django-q2 runs enqueued jobs at once in this process (its `sync` mode)."""
    from django_q.conf import Conf

    previous, Conf.SYNC = Conf.SYNC, True
    yield
    Conf.SYNC = previous


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1 playing the receiving application."""
    with Receiver() as r:
        yield r


@pytest.fixture
def local_targets(settings: Any) -> None:
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.DELIVERY_RETRY_DELAYS = [5, 300, 1800, 7200, 18000, 36000]


@pytest.fixture(autouse=True)
def sender_timer(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """The sender's timer job waits on a worker until the next delivery is due; run inline in
    this process it would hold each test up, so starting it is only recorded here (tests of
    the timer run it themselves, and a real cluster runs it in the end-to-end tests)."""
    started: list[bool] = []
    monkeypatch.setattr("delivery.timer.start_waiter", lambda: started.append(True))
    return started


@pytest.fixture(autouse=True)
def _no_settled_totals() -> None:
    """/metrics keeps totals of final rows per process; each test starts from its own rows."""
    from signalserver import settled

    settled.forget()


@pytest.fixture(autouse=True)
def _clean_redis() -> Iterator[None]:
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL)
        client.flushdb()
        client.close()
    yield
