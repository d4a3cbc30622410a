"""Logs in production: every line the real `serve` prints is JSON, Gunicorn's included."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys

import pytest
import requests

from signalserver.logs import ContextFilter, JsonFormatter, redact
from tests.conftest import ROOT, child_database_env, free_port, wait_for_http, wait_until
from tests.logscan import record_output


def test_redaction_covers_sign_in_paths_and_token_query_parameters():
    assert redact("GET /login/magic/abcDEF_123-xyz?next=/ HTTP/1.1") == "GET /login/magic/[redacted]?next=/ HTTP/1.1"
    assert redact("/metrics?token=s3cr3t&x=1") == "/metrics?token=[redacted]&x=1"
    assert redact("/cb?page=2&API_KEY=abc&signature=xyz") == "/cb?page=2&API_KEY=[redacted]&signature=[redacted]"
    assert redact("/?q=Lot&page=50") == "/?q=Lot&page=50"


def test_a_json_line_carries_the_context_and_redacts_extra_fields():
    record = logging.makeLogRecord(
        {"name": "x", "levelno": 20, "levelname": "INFO", "msg": "opened %s", "args": ("/login/magic/T0k3n",)}
    )
    record.path = "/api?token=abc"
    ContextFilter().filter(record)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "opened /login/magic/[redacted]"
    assert entry["path"] == "/api?token=[redacted]"
    assert "request_id" not in entry  # outside a request


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_every_line_serve_prints_in_production_is_json(production_env, stop_process, tmp_path):
    from signalserver.models import WorkerHeartbeat

    port = free_port()
    env = {
        **production_env,
        **child_database_env(),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "GUNICORN_WORKERS": "1",
        "Q_WORKERS": "1",
    }
    out = (tmp_path / "serve.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve"],
        env=env,
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stop_process.append(proc)
    base = f"http://127.0.0.1:{port}"
    wait_for_http(f"{base}/health/live", proc=proc, timeout=60)
    wait_until(lambda: WorkerHeartbeat.objects.exists(), timeout=60, message="the job cluster started")
    token = "Zz" * 21 + "A"
    requests.get(f"{base}/health/live", headers={"X-Request-ID": "probe-42"}, timeout=10)
    requests.get(f"{base}/metrics?token=very-secret-value", timeout=10)
    requests.get(f"{base}/login/magic/{token}", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    requests.get(f"{base}/no/such/page", headers={"X-Forwarded-Proto": "https"}, timeout=10)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    out.seek(0)
    text = out.read()
    record_output("serve", text)

    lines = text.splitlines()
    entries = []
    for line in lines:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"not JSON: {line!r}; all it printed:\n{text[-4000:]}")
        assert {"time", "level", "logger", "message"} <= entry.keys(), line
        entries.append(entry)
    loggers = {e["logger"] for e in entries}
    assert {"gunicorn.error", "gunicorn.access", "django-q", "signalserver.management.commands.serve"} <= loggers
    access = {e["path"]: e for e in entries if e["logger"] == "gunicorn.access"}
    live = access["/health/live"]
    assert live["method"] == "GET" and live["status"] == 200 and live["request_id"] == "probe-42"
    assert isinstance(live["duration_ms"], float) and live["duration_ms"] >= 0
    assert access["/metrics?token=[redacted]"]["status"] == 200
    assert access["/login/magic/[redacted]"]["method"] == "GET"
    assert access["/no/such/page"]["status"] == 404
    assert all(len(e["request_id"]) == 32 for path, e in access.items() if path != "/health/live")
    assert token not in text and "very-secret-value" not in text
    assert any(e["message"].startswith("Booting worker") for e in entries)
