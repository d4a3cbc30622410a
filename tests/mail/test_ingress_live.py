"""The Apps Script's request against a real server, to a real receiver; simultaneous pushes."""

from __future__ import annotations

import json

import pytest
import requests
from standardwebhooks import Webhook

from delivery.models import Delivery, Endpoint
from mail.models import Email
from tests.conftest import run_together, wait_until
from tests.mail.test_ingress import FIXTURE, TOKEN

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def app(webhook_receiver, settings) -> Endpoint:
    settings.PROCESS_API_TOKEN = TOKEN
    return Endpoint.objects.get(name="app")


def send_as_the_apps_script(base_url: str) -> requests.Response:
    headers = {k: v.replace("{PROCESS_API_TOKEN}", TOKEN) for k, v in FIXTURE["headers"].items()}
    return requests.request(
        FIXTURE["method"], base_url + FIXTURE["path"], data=FIXTURE["body"].encode(), headers=headers, timeout=60
    )


def test_the_apps_script_request_becomes_a_signed_webhook(live_server, app, webhook_receiver):
    response = send_as_the_apps_script(live_server.url)
    assert response.status_code == 200 and response.json()["status"] == "queued"
    wait_until(lambda: webhook_receiver.received, message="webhook received")
    [webhook] = webhook_receiver.received
    payload = Webhook(str(app.secret)).verify(webhook.body, webhook.headers)
    sent = json.loads(FIXTURE["body"])
    assert payload["source"] == "gmail_push"
    assert payload["microsoft_graph_email_id"] == response.json()["email_id"]
    assert payload["subject"] == sent["subject"]
    assert payload["receivedDateTime"] == sent["date"]
    assert payload["sender_address"] == sent["sender"]
    assert payload["sender_email"] == "missions@media-solution.example"
    assert payload["bodyPreview"] == sent["body"][:200]
    assert payload["email_content"] == sent["body"]
    assert payload["detector"] == "recadrage" and payload["delivery_time"] == "le 03/09/2026 à 09h05"
    assert payload["delivery_links"] == [
        {"provider": "dropbox", "raw_url": "https://www.dropbox.com/scl/fo/abc123def/AAbbCCdd?rlkey=k3y9x&dl=0"}
    ]
    assert webhook.headers["webhook-id"] == Delivery.objects.get().webhook_id
    wait_until(lambda: Email.objects.get().decision == "delivered", message="email marked delivered")


def test_simultaneous_pushes_of_one_message_give_one_delivery(live_server, app, webhook_receiver):
    answers = run_together(lambda: send_as_the_apps_script(live_server.url), threads=8)
    assert [a.status_code for a in answers] == [200] * 8
    statuses = sorted(a.json()["status"] for a in answers)
    assert statuses == ["already_processed"] * 7 + ["queued"]
    assert len({a.json()["email_id"] for a in answers}) == 1
    wait_until(lambda: Delivery.objects.filter(status="delivered").exists(), message="delivered")
    assert Email.objects.count() == 1 and Delivery.objects.count() == 1
    assert len(webhook_receiver.received) == 1
