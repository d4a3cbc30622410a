"""No secret in any log line of the whole test run (this module runs last)."""

from __future__ import annotations

import pytest

from tests.logscan import LOG_PATH, find_secrets


@pytest.mark.last
def test_no_secret_is_in_any_log_line_of_the_run(request):
    lines = LOG_PATH.read_text(encoding="utf-8").splitlines()
    if len(request.session.items) > 10:
        assert len(lines) > 100, "the run's log is nearly empty: is the handler attached?"
    assert find_secrets(lines) == []


def test_the_scan_finds_every_kind_of_secret_and_not_its_redacted_form():
    planted = [
        '{"message": "signing with whsec_MfKQ9r4gKGDtu2Dk6RwV2D3e+h9OHb0o"}',
        '{"message": "token sst_x2bT6Qe0cYb8d3mW9aKxV7n1fR4pH5sL0oJ6uI2yT8e"}',
        '{"message": "GET /login/magic/abcDEF0123456789abcDEF0123456789abcDEF01234 200"}',
        '{"message": "Authorization: Bearer m3trics-t0ken-for-prometheus"}',
        '{"path": "/metrics?token=0123456789abcdef"}',
        "[serve] SECRET_KEY=prod-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGH",
    ]
    assert {int(leak.split(":")[0].split()[1]) for leak in find_secrets(planted)} == set(range(1, 7))
    redacted = [
        '{"message": "GET /login/magic/[redacted]?next=/ 302"}',
        '{"path": "/metrics?token=[redacted]"}',
        '{"message": "Send Authorization: Bearer <METRICS_TOKEN>"}',
        '{"message": "CUSTOM_WEBHOOK: delivered msg_0123456789abcdef to app"}',
    ]
    assert find_secrets(redacted) == []
