"""The dashboard's Deploy button in Chromium: a confirmation page, then the deployment and its status."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from deploys.models import Deployment
from signalserver.models import MagicLink
from tests.deploys.render_server import HOOK_KEY
from tests.signalserver.conftest import chromium, page, shoot, site  # noqa: F401  (shared fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_an_operator_deploys_from_the_dashboard_after_confirming(site, page, hook):  # noqa: F811
    alice = User.objects.create_user("alice", password="pw", is_staff=True)
    _, token = MagicLink.issue(alice)
    page.goto(f"{site}/login/magic/{token}")
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    assert "No deployment recorded." in page.locator("#deployments").inner_text()

    page.get_by_role("button", name="Deploy…").click()
    page.get_by_role("heading", name="Deploy").wait_for()
    text = page.locator("main").inner_text()
    assert "Render deploy hook" in text and "key=***" in text and HOOK_KEY not in page.content()
    assert Deployment.objects.count() == 0
    shoot(page, "deploy-confirm")

    page.get_by_role("button", name="Deploy now").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    deployment = Deployment.objects.get()
    assert deployment.actor == "alice" and deployment.status == "succeeded"
    panel = page.locator("#deployments").inner_text()
    assert f"Latest: #{deployment.pk}" in panel and "Succeeded" in panel
    assert f"Deployment #{deployment.pk} queued" in page.locator(".messages").inner_text()
    assert HOOK_KEY not in page.content()
    shoot(page, "dashboard-deployed")
