"""POST /deploys/github/: signatures checked before the body is read as JSON, pushes to the deploy branch deploy."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from django.test import Client

from deploys.github import signature
from deploys.models import Deployment
from tests.deploys.conftest import GITHUB_SECRET

pytestmark = pytest.mark.django_db


def push(ref: str = "refs/heads/main", **extra: object) -> bytes:
    return json.dumps({"ref": ref, "after": "a1b2c3d4e5f6a7b8", "pusher": {"name": "octocat"}, **extra}).encode()


def send(body: bytes, event: str = "push", delivery: str | None = None, sig: str | None = None):
    """POST like GitHub: `sig` None signs the body with the right secret, "" sends no signature."""
    headers: dict[str, Any] = {"HTTP_X_GITHUB_EVENT": event, "HTTP_X_GITHUB_DELIVERY": delivery or str(uuid.uuid4())}
    if sig != "":
        headers["HTTP_X_HUB_SIGNATURE_256"] = signature(GITHUB_SECRET, body) if sig is None else sig
    return Client(enforce_csrf_checks=True).post("/deploys/github/", body, content_type="application/json", **headers)


def test_a_signed_push_to_the_deploy_branch_starts_a_deployment(hook):
    delivery = str(uuid.uuid4())
    response = send(push(), delivery=delivery)
    assert response.status_code == 202
    deployment = Deployment.objects.get(pk=response.json()["deployment_id"])
    assert deployment.triggered_by == "github" and deployment.github_delivery == delivery
    assert deployment.actor == f"GitHub delivery {delivery}: push a1b2c3d4e5f6 by octocat"
    assert deployment.status == "succeeded" and len(hook.calls) == 1


def test_an_invalid_signature_is_refused_and_starts_nothing(hook):
    body = push()
    response = send(body, sig=signature("another-secret", body))
    assert response.status_code == 401 and Deployment.objects.count() == 0


def test_a_signature_of_another_body_is_refused(hook):
    response = send(push(), sig=signature(GITHUB_SECRET, push("refs/heads/other")))
    assert response.status_code == 401 and Deployment.objects.count() == 0


def test_a_missing_signature_is_refused(hook):
    response = send(push(), sig="")
    assert response.status_code == 401 and Deployment.objects.count() == 0


def test_a_signature_is_checked_before_the_body_is_parsed(hook):
    response = send(b"{not json", sig="sha256=" + "0" * 64)
    assert response.status_code == 401


def test_a_replayed_delivery_starts_nothing(hook):
    delivery = str(uuid.uuid4())
    first, replay = send(push(), delivery=delivery), send(push(), delivery=delivery)
    assert first.status_code == 202
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    assert Deployment.objects.count() == 1 and len(hook.calls) == 1


def test_ping_is_answered(hook):
    response = send(json.dumps({"zen": "Keep it logically awesome.", "hook_id": 1}).encode(), event="ping")
    assert response.status_code == 200 and response.json()["status"] == "pong"
    assert Deployment.objects.count() == 0


@pytest.mark.parametrize(
    "event, body",
    [
        ("push", push("refs/heads/feature")),
        ("push", push("refs/tags/v1.0")),
        ("push", push(deleted=True)),
        ("issues", json.dumps({"action": "opened"}).encode()),
    ],
)
def test_other_events_and_branches_are_acknowledged_and_ignored(hook, event, body):
    response = send(body, event=event)
    assert response.status_code == 202 and response.json()["status"] == "ignored"
    assert Deployment.objects.count() == 0 and hook.calls == []


def test_the_deploy_branch_is_a_setting(hook, settings):
    settings.DEPLOY_BRANCH = "production"
    assert send(push()).json()["status"] == "ignored"
    assert send(push("refs/heads/production")).status_code == 202


def test_an_oversized_body_is_refused_unread(hook, settings):
    settings.GITHUB_WEBHOOK_MAX_BYTES = 1024
    body = push(padding="x" * 2000)
    response = send(body)
    assert response.status_code == 413 and Deployment.objects.count() == 0


def test_without_a_secret_every_webhook_is_refused(hook, settings):
    settings.GITHUB_WEBHOOK_SECRET = ""
    response = send(push(), sig=signature("", push()))
    assert response.status_code == 503 and Deployment.objects.count() == 0


def test_a_push_without_a_delivery_id_is_refused(hook):
    response = send(push(), delivery="bad id!")
    assert response.status_code == 400 and Deployment.objects.count() == 0
