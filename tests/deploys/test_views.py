"""The deploy API, the dashboard's Deploy button with its confirmation step, and the latest deployment shown."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from deploys.models import Deployment
from signalserver.models import ApiToken
from tests.deploys.render_server import HOOK_KEY

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> User:
    return User.objects.create_user("alice", password="pw", is_staff=True)


def csrf_client(user: User) -> tuple[Client, str]:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/")  # the dashboard has forms: it sets the CSRF cookie
    return client, client.cookies["csrftoken"].value


def test_an_api_token_with_the_deploy_scope_queues_a_deployment(hook):
    _, token = ApiToken.issue("github-actions", ["deploy"])
    response = Client().post("/api/deploy_application", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 202
    body = response.json()
    assert body["success"] is True and body["status"] in ("queued", "running", "succeeded")
    deployment = Deployment.objects.get(pk=body["deployment_id"])
    assert deployment.triggered_by == "api" and deployment.actor == "API token github-actions"
    status = Client().get(body["status_url"], HTTP_AUTHORIZATION=f"Bearer {token}").json()
    assert status["status"] == "succeeded" and "?key=***" in status["output"] and HOOK_KEY not in str(status)


def test_a_token_without_the_deploy_scope_is_refused(hook):
    _, token = ApiToken.issue("r2-only", ["test_r2"])
    response = Client().post("/api/deploy_application", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401 and Deployment.objects.count() == 0


def test_an_anonymous_caller_is_refused(hook):
    assert Client().post("/api/deploy_application").status_code == 401
    assert Deployment.objects.count() == 0


def test_a_staff_session_needs_the_csrf_token(hook, staff):
    client, csrf = csrf_client(staff)
    assert client.post("/api/deploy_application").status_code == 403
    response = client.post("/api/deploy_application", {"method": "hook"}, HTTP_X_CSRFTOKEN=csrf)
    assert response.status_code == 202
    assert Deployment.objects.get().actor == "alice (API)"


def test_a_json_body_may_choose_the_method(api):
    _, token = ApiToken.issue("ci", ["deploy"])
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.post("/api/deploy_application", {"method": "api"}, content_type="application/json")
    assert response.status_code == 202 and Deployment.objects.get().method == "api"


def test_an_unknown_method_is_a_clear_error(hook):
    _, token = ApiToken.issue("ci", ["deploy"])
    response = Client().post("/api/deploy_application", {"method": "ftp"}, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 400 and "method" in response.json()["error"]


def test_a_configuration_problem_answers_400_and_is_recorded(render):
    _, token = ApiToken.issue("ci", ["deploy"])
    response = Client().post("/api/deploy_application", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 400
    assert "nothing to deploy with" in response.json()["message"]
    assert Deployment.objects.get().status == "failed"


def test_the_dashboard_deploy_button_asks_for_confirmation_first(hook, staff):
    client, csrf = csrf_client(staff)
    dashboard = client.get("/").content.decode()
    assert 'action="/dashboard/deploy"' in dashboard and "Deploy…" in dashboard
    confirm = client.get("/dashboard/deploy").content.decode()
    assert "Render deploy hook" in confirm and "key=***" in confirm and HOOK_KEY not in confirm
    assert "Deploy now" in confirm and Deployment.objects.count() == 0
    response = client.post("/dashboard/deploy", {"csrfmiddlewaretoken": csrf, "method": ""})
    assert response.status_code == 302
    deployment = Deployment.objects.get()
    assert deployment.triggered_by == "dashboard" and deployment.actor == "alice"


def test_the_dashboard_shows_the_latest_deployment_with_its_status(hook, staff):
    Deployment.objects.create(triggered_by="github", actor="GitHub delivery 1", status="failed")
    latest = Deployment.objects.create(triggered_by="dashboard", actor="alice", status="running", method="hook")
    client, _ = csrf_client(staff)
    page = client.get("/").content.decode()
    assert f"Latest: <b>#{latest.pk}</b>" in page and 'class="pill deploy-running">Running' in page
    assert "GitHub delivery 1" in page


def test_the_confirmation_page_names_what_is_missing(render, staff):
    client, _ = csrf_client(staff)
    page = client.get("/dashboard/deploy").content.decode()
    assert "Cannot deploy: nothing to deploy with" in page and "Deploy now" not in page


def test_operators_who_are_not_staff_cannot_deploy(hook):
    bob = User.objects.create_user("bob", password="pw")
    client, csrf = csrf_client(bob)
    assert "Deploy…" not in client.get("/").content.decode()
    assert client.get("/dashboard/deploy").status_code == 403
    assert client.post("/dashboard/deploy", {"csrfmiddlewaretoken": csrf}).status_code == 403
    assert Deployment.objects.count() == 0
