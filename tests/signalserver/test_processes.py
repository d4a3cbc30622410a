"""The real processes: Gunicorn from gunicorn.conf.py, `serve` in every role, /api/ping in development."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import requests

from signalserver.models import WorkerHeartbeat
from tests.conftest import ROOT, base_env, child_database_env, free_port, wait_for_http

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_gunicorn_starts_from_its_config_and_serves_health(production_env, stop_process):
    port = free_port()
    env = {
        **production_env,
        **child_database_env(),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "GUNICORN_WORKERS": "1",
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "signalserver.wsgi"], env=env, cwd=ROOT
    )
    stop_process.append(proc)
    live = wait_for_http(f"http://127.0.0.1:{port}/health/live", proc=proc)
    assert live.status_code == 200
    health = requests.get(f"http://127.0.0.1:{port}/health", timeout=10)
    assert health.status_code == 503
    assert "redis" in health.json()["failed"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=35) == 0


def test_the_gunicorn_access_log_never_shows_a_sign_in_token(production_env, stop_process, tmp_path):
    port = free_port()
    env = {**production_env, **child_database_env(), "PORT": str(port), "HOST": "127.0.0.1", "GUNICORN_WORKERS": "1"}
    log = (tmp_path / "access.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "signalserver.wsgi"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    stop_process.append(proc)
    wait_for_http(f"http://127.0.0.1:{port}/health/live", proc=proc)
    token = "T0ken" * 8 + "abc"
    page = f"http://127.0.0.1:{port}/login/magic/{token}"
    response = requests.get(page + "?next=/", headers={"Referer": page}, timeout=10, allow_redirects=False)
    assert response.status_code == 301  # to https, in production
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=35)
    log.seek(0)
    output = log.read()
    assert "GET /login/magic/[redacted]?next=/" in output
    assert token not in output


def test_serve_runs_web_and_worker_and_stops_both_on_sigterm(stop_process):
    port = free_port()
    env = base_env(DEBUG="true", PORT=str(port), HOST="127.0.0.1", GUNICORN_WORKERS="1", **child_database_env())
    proc = subprocess.Popen([sys.executable, "manage.py", "serve"], env=env, cwd=ROOT, start_new_session=True)
    stop_process.append(proc)
    deadline = time.monotonic() + 60
    health = wait_for_http(f"http://127.0.0.1:{port}/health", proc=proc)
    while health.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=5)
    assert health.status_code == 200, health.json()
    assert WorkerHeartbeat.objects.exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=40) == 0
    leftovers = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert leftovers == []


def serve_web_only(stop_process: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """`manage.py serve` in development mode without the job cluster, its output captured."""
    port = free_port()
    env = base_env(
        DEBUG="true",
        PORT=str(port),
        HOST="127.0.0.1",
        GUNICORN_WORKERS="1",
        ENABLE_BACKGROUND_TASKS="false",
        **child_database_env(),
    )
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve"], env=env, cwd=ROOT, stdout=subprocess.PIPE, start_new_session=True
    )
    stop_process.append(proc)
    wait_for_http(f"http://127.0.0.1:{port}/health/live", proc=proc)
    return proc


def test_serve_without_background_tasks_runs_only_the_web_server(stop_process):
    proc = serve_web_only(stop_process)
    time.sleep(3)
    assert not WorkerHeartbeat.objects.exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=40) == 0
    assert b"background tasks=off" in proc.stdout.read()  # type: ignore[union-attr]


def test_ping_reports_missing_required_variables_in_development():
    code = (
        "import django, json; django.setup(); from django.test import Client; "
        "print(json.dumps(Client().get('/api/ping', HTTP_HOST='localhost').json()))"
    )
    env = base_env(
        DEBUG="true", DJANGO_SETTINGS_MODULE="signalserver.settings", **{**child_database_env(), "SECRET_KEY": ""}
    )
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout.strip().splitlines()[-1])
    assert body["required_vars_present"] is False
    assert body["missing_vars"] == ["SECRET_KEY", "ALLOWED_HOSTS"]


def test_serve_prints_a_createsuperuser_command_that_works_as_printed_until_a_user_exists(stop_process):
    from django.contrib.auth.models import User

    from signalserver.management.commands.serve import createsuperuser_hint

    database = child_database_env()
    proc = serve_web_only(stop_process)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=40)
    printed = proc.stdout.read().decode()  # type: ignore[union-attr]
    [command] = [line.strip() for line in printed.splitlines() if line.strip().endswith(" createsuperuser")]
    assert command.startswith("DEBUG=true ")
    # Pasted into a shell elsewhere, with nothing of ours in its environment (but the database
    # URL, which a developer on PostgreSQL has exported).
    shell_env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SUPERUSER_USERNAME": "admin",
        "DJANGO_SUPERUSER_PASSWORD": "a long enough password 42",
        "DJANGO_SUPERUSER_EMAIL": "admin@example.com",
        **({"DATABASE_URL": database["DATABASE_URL"]} if database["DATABASE_URL"] else {}),
    }
    created = subprocess.run(
        ["bash", "-c", command + " --noinput"], env=shell_env, cwd="/", capture_output=True, text=True, timeout=60
    )
    assert created.returncode == 0, created.stderr
    assert User.objects.filter(username="admin", is_superuser=True).exists()
    assert createsuperuser_hint() == ""  # printed no more once a user exists
