"""Releases with real release directories and a real Gunicorn serving from `current` (through
`serve`), under a steady load: zero failed requests, and a broken release rolled back while
the previous one keeps serving."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploys.local import alive as running
from deploys.models import Deployment
from deploys.releases import Layout, prune
from signalserver.models import WorkerHeartbeat
from tests.conftest import child_database_env, free_port, manage, wait_until
from tests.deploys.releasing import (
    RELEASES_ROOT,
    Load,
    git_repository,
    reset,
    serve,
    session_members,
    source,
    stop_serve,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def release_env(production_env: dict[str, str], port: int) -> dict[str, str]:
    return {
        **production_env,
        **child_database_env(),
        "RELEASES_DIR": str(RELEASES_ROOT),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "SIGNALSERVER_ROLE": "all",
        "Q_WORKERS": "1",
        "GUNICORN_WORKERS": "2",
        "GUNICORN_GRACEFUL_TIMEOUT": "10",
        "RELEASE_HEALTH_TIMEOUT_SECONDS": "90",
    }


@pytest.fixture
def serving() -> Iterator[list[subprocess.Popen[bytes]]]:
    """`serve` processes to stop at the end, with whatever is left in their sessions."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            stop_serve(proc)
        for pid in session_members(proc.pid):
            os.kill(pid, signal.SIGKILL)


def test_releases_switch_without_a_failed_request_and_a_broken_one_is_rolled_back(tmp_path, production_env, serving):
    WorkerHeartbeat.beat("qcluster@test", "test", os.getpid())  # /health wants a job cluster
    port = free_port()
    env = release_env(production_env, port)
    reset(RELEASES_ROOT)
    first = manage(["release", str(source(tmp_path / "a"))], env, timeout=900)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "No running Gunicorn master" in first.stdout
    assert os.readlink(RELEASES_ROOT / "current") == "releases/1"

    web = serve(RELEASES_ROOT, env)
    serving.append(web)
    url = f"http://127.0.0.1:{port}/health/live"
    wait_until(lambda: _answers(url) == "1", timeout=120, message="release 1 serving")
    cluster = wait_until(lambda: job_cluster(web.pid), timeout=60, message="the job cluster running")

    # Release 2 from a git ref, under load.
    repository = git_repository(source(tmp_path / "b", build="b"))
    with Load(url) as load:
        wait_until(lambda: len(load.answers) > 20, message="load running")
        second = manage(["release", "main", "--repository", str(repository)], env, timeout=600)
        wait_until(lambda: load.answers[-1].release == "2", timeout=30, message="release 2 answering")
    assert second.returncode == 0, second.stdout + second.stderr
    assert load.failed == [], f"{len(load.failed)} of {len(load.answers)} requests failed"
    assert load.first_from("1") and load.first_from("2")
    assert {a.build for a in load.answers if a.release == "2"} == {"b"}
    deployment = Deployment.objects.get(release=2)
    assert deployment.status == "succeeded" and deployment.method == "release"
    assert "Requirements unchanged" in deployment.output
    # serve followed the hand-over to the new master, and restarted the job cluster on the new code.
    assert web.poll() is None and "restart the job cluster" in deployment.output
    wait_until(lambda: job_cluster(web.pid) not in (None, cluster), timeout=60, message="a new job cluster")

    # A broken release: its master cannot start its workers; current goes back, 2 keeps serving.
    with Load(url) as load:
        wait_until(lambda: len(load.answers) > 20, message="load running")
        third = manage(["release", str(source(tmp_path / "c", broken=True))], env, timeout=600)
        seen = len(load.answers)
        wait_until(lambda: len(load.answers) > seen + 20, message="load after the rollback")
    assert third.returncode != 0
    assert load.failed == [] and {a.release for a in load.answers} == {"2"}
    assert os.readlink(RELEASES_ROOT / "current") == "releases/2"
    broken = Deployment.objects.get(release=3)
    assert broken.status == "rolled_back" and "still serving" in broken.output

    listing = manage(["releases"], env).stdout
    assert "*    2" in listing and "rolled back" in listing

    # Back to release 1 by hand.
    with Load(url) as load:
        back = manage(["rollback"], env, timeout=300)
        wait_until(lambda: load.answers[-1].release == "1", timeout=30, message="release 1 answering")
    assert back.returncode == 0, back.stdout + back.stderr
    assert load.failed == []
    assert os.readlink(RELEASES_ROOT / "current") == "releases/1"

    assert stop_serve(web) == 0
    master = RELEASES_ROOT / "gunicorn.pid"
    assert not master.exists() or not running(int(master.read_text()))


def job_cluster(serve_pid: int) -> int | None:
    """The pid of serve's `qcluster` child."""
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[-1].split()[1]) == serve_pid and b"qcluster" in cmdline:
            return int(proc.name)
    return None


def _answers(url: str) -> str:
    import requests

    try:
        return requests.get(url, timeout=2).headers.get("X-Release", "")
    except requests.RequestException:
        return ""


def test_only_the_last_releases_and_the_current_one_are_kept(tmp_path, settings):
    settings.RELEASES_DIR = str(tmp_path)
    layout = Layout.configured()
    for number in range(1, 8):
        (layout.release(number)).mkdir(parents=True)
        (layout.venvs / f"v{number % 2}").mkdir(parents=True, exist_ok=True)
        (layout.release(number) / ".venv").symlink_to(f"../../venvs/v{number % 2}")
    (layout.venvs / "unused").mkdir()
    layout.switch(2)
    prune(layout, 4, lambda line: None)
    assert layout.numbers() == [2, 4, 5, 6, 7]
    assert sorted(p.name for p in layout.venvs.iterdir()) == ["v0", "v1"]


def test_the_switch_is_an_atomic_rename_of_a_new_link(tmp_path, settings):
    settings.RELEASES_DIR = str(tmp_path)
    layout = Layout.configured()
    layout.release(1).mkdir(parents=True)
    layout.release(2).mkdir(parents=True)
    layout.switch(1)
    inode_before = os.lstat(layout.current).st_ino
    layout.switch(2)
    assert os.readlink(layout.current) == "releases/2" and os.lstat(layout.current).st_ino != inode_before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".current")] == []


def test_release_commands_need_releases_dir(production_env):
    env = {**production_env, **child_database_env(), "RELEASES_DIR": ""}
    result = manage(["releases"], env)
    assert result.returncode != 0 and "RELEASES_DIR is not set" in result.stderr


def test_a_release_that_cannot_be_built_changes_nothing(tmp_path, production_env):
    env = {**production_env, **child_database_env(), "RELEASES_DIR": str(tmp_path / "r")}
    missing = manage(["release", "no-such-ref", "--repository", str(tmp_path / "nothing")], env)
    assert missing.returncode != 0 and "not a directory" in missing.stderr + missing.stdout
    assert not (tmp_path / "r" / "current").exists()
    shutil.rmtree(tmp_path / "r", ignore_errors=True)
