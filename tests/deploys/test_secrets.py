"""No deploy secret (hook key, API key, webhook secret, API token) in any log record, row or page."""

from __future__ import annotations

import logging
import uuid

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.forms.models import model_to_dict
from django.test import Client

from deploys.github import signature
from deploys.models import Deployment
from signalserver.models import ApiToken
from tests.deploys.conftest import GITHUB_SECRET
from tests.deploys.render_server import API_KEY, HOOK_KEY, SERVICE

pytestmark = pytest.mark.django_db


def test_no_secret_reaches_a_log_record_a_row_or_a_page(hook, api, settings, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    _, token = ApiToken.issue("ci", ["deploy"])
    secrets = [HOOK_KEY, API_KEY, GITHUB_SECRET, token]
    api_client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")

    # Every path: hook accepted and followed, hook failing over to the API, an API error,
    # an unreachable hook, the GitHub webhook (good and bad signatures), the command.
    assert api_client.post("/api/deploy_application").status_code == 202
    hook.hook_replies.append((500, {"message": "down"}))
    assert api_client.post("/api/deploy_application").status_code == 202
    hook.create_replies.append((401, {"message": f"bad key {API_KEY}"}))
    assert api_client.post("/api/deploy_application", {"method": "api"}).status_code == 202
    body = b'{"ref": "refs/heads/main", "after": "abc"}'
    for sig in (signature(GITHUB_SECRET, body), signature("guess", body)):
        Client().post(
            "/deploys/github/",
            body,
            content_type="application/json",
            HTTP_X_GITHUB_EVENT="push",
            HTTP_X_GITHUB_DELIVERY=str(uuid.uuid4()),
            HTTP_X_HUB_SIGNATURE_256=sig,
        )
    call_command("deploy", "--wait")
    settings.RENDER_DEPLOY_HOOK_URL = f"http://127.0.0.1:1/deploy/{SERVICE}?key={HOOK_KEY}"
    settings.RENDER_API_BASE_URL = "http://127.0.0.1:1"
    Client(HTTP_AUTHORIZATION=f"Bearer {token}").post("/api/deploy_application")
    assert Deployment.objects.filter(status="failed").count() == 2

    admin = User.objects.create_superuser("root", password="pw")
    browser = Client()
    browser.force_login(admin)
    pages = [browser.get(p).content.decode() for p in ("/", "/dashboard/deploy", "/admin/deploys/deployment/")]
    for deployment in Deployment.objects.all():
        pages.append(browser.get(f"/admin/deploys/deployment/{deployment.pk}/change/").content.decode())
        pages.append(api_client.get(f"/api/deployments/{deployment.pk}").content.decode())
    rows = [str(model_to_dict(d)) for d in Deployment.objects.all()]
    logs = [r.getMessage() + str(r.__dict__.get("exc_text") or "") for r in caplog.records]

    assert any("POST /deploy/" in line and "key=***" in line for line in logs)  # urllib3's request line, masked
    assert any("HTTP 401" in row for row in rows) and any("refused the connection" in row for row in rows)
    for text in [*logs, *rows, *pages, capsys.readouterr().out]:
        for secret in secrets:
            assert secret not in text
