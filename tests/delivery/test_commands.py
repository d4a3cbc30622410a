"""send_test_webhook and the original app's environment variables."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from standardwebhooks import Webhook

from delivery.bootstrap import create_first_endpoint
from delivery.models import Endpoint, SendingSchedule

pytestmark = pytest.mark.django_db


def test_dry_run_shows_the_exact_signed_request_and_sends_nothing(endpoint, receiver):
    out = io.StringIO()
    call_command("send_test_webhook", "app", dry_run=True, stdout=out)
    text = out.getvalue()
    assert f"POST {endpoint.url}" in text and "webhook-signature: v1," in text
    assert receiver.received == []


def test_send_test_webhook_sends_a_verifiable_request(endpoint, receiver):
    call_command("send_test_webhook", "app", stdout=io.StringIO())
    [request] = receiver.received
    assert (
        Webhook(str(endpoint.secret)).verify(request.body, request.headers)["microsoft_graph_email_id"]
        == "test-webhook"
    )


def test_the_original_webhook_url_creates_the_first_endpoint(settings):
    settings.LEGACY_ENDPOINT_URL = "https://webhook.example.com/index.php"
    settings.LEGACY_ENDPOINT_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    endpoint = create_first_endpoint()
    assert endpoint is not None
    assert (endpoint.url, endpoint.secret, endpoint.is_default) == (
        "https://webhook.example.com/index.php",
        settings.LEGACY_ENDPOINT_SECRET,
        True,
    )
    assert endpoint.success_rule == "json_success"
    assert create_first_endpoint() is None  # only when none exists


def test_the_original_window_variables_seed_the_schedule(settings):
    SendingSchedule.objects.all().delete()
    settings.LEGACY_SENDING_SCHEDULE = {
        "sending_enabled": False,
        "window_start": "09h00",
        "window_end": "19h00",
        "timezone": "Europe/Paris",
    }
    schedule = SendingSchedule.load()
    assert (schedule.sending_enabled, schedule.window_start, schedule.window_end) == (False, "09h00", "19h00")


def test_the_secret_is_stored_encrypted_and_rotates(endpoint):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM delivery_endpoint WHERE id = %s", [endpoint.pk])
        stored = cursor.fetchone()[0]
    assert stored.startswith("fernet:") and endpoint.secret not in stored
    old = endpoint.secret
    assert endpoint.rotate_secret() != old
    assert Endpoint.objects.get().secret.startswith("whsec_")
