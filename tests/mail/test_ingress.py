"""POST /api/ingress/gmail: the original's Apps Script client, its answers, and the one pipeline."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from delivery.models import Delivery, Endpoint, RoutingRule, RuleCondition, SendingSchedule
from mail.models import Email, GmailIngress, RawMessage
from signalserver.models import ApiToken

pytestmark = pytest.mark.django_db

URL = "/api/ingress/gmail"
TOKEN = "process-api-token-0123456789abcdef"
FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "apps_script_request.json").read_text("utf-8"))


def apps_script_payload(**changes: object) -> dict[str, object]:
    return {**json.loads(FIXTURE["body"]), **changes}


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


@pytest.fixture(autouse=True)
def _process_token(settings) -> None:
    settings.PROCESS_API_TOKEN = TOKEN
    cache.clear()


@pytest.fixture
def app(webhook_receiver) -> Endpoint:
    """The default endpoint, on a local receiver."""
    return Endpoint.objects.get(name="app")


def push(body: object = None, raw: bytes | str | None = None, auth: str | None = f"Bearer {TOKEN}", **meta: Any):
    data = raw if raw is not None else json.dumps(apps_script_payload() if body is None else body)
    if auth is not None:
        meta["HTTP_AUTHORIZATION"] = auth
    return Client().post(URL, data=data, content_type="application/json", **meta)


def replay_apps_script():
    headers = {k: v.replace("{PROCESS_API_TOKEN}", TOKEN) for k, v in FIXTURE["headers"].items()}
    content_type = headers.pop("Content-Type")
    body = FIXTURE["body"].encode()
    return Client().generic(FIXTURE["method"], FIXTURE["path"], body, content_type, headers=headers)


def test_the_apps_script_request_is_queued_as_an_order_with_the_original_s_id(app):
    response = replay_apps_script()
    sent = json.loads(FIXTURE["body"])
    expected_id = md5(f"{sent['subject']}|missions@media-solution.example|{sent['date']}")
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "status": "queued",
        "email_id": expected_id,
        "decision": "accepted",
        "reason": response.json()["reason"],
    }
    email = Email.objects.get()
    assert (email.source, email.mailbox, email.identity) == ("gmail_push", None, expected_id)
    assert email.email_id == expected_id
    assert (email.detector, email.delivery_time) == ("recadrage", "le 03/09/2026 à 09h05")
    assert email.links == [
        {"provider": "dropbox", "raw_url": "https://www.dropbox.com/scl/fo/abc123def/AAbbCCdd?rlkey=k3y9x&dl=0"}
    ]
    assert email.sender_raw == sent["sender"] and email.date_header == sent["date"]
    assert email.sent_at == dt.datetime(2026, 11, 3, 8, 15, tzinfo=dt.UTC)
    assert RawMessage.read(email.pk) == FIXTURE["body"].encode()
    assert Delivery.objects.get().endpoint == app


@pytest.mark.parametrize(
    "auth",
    [None, "", "Bearer ", "Bearer wrong-token", f"Token {TOKEN}", f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}"],
)
def test_a_push_without_the_right_token_is_unauthorized_and_writes_nothing(app, auth):
    response = push(auth=auth)
    assert (response.status_code, response.json()) == (401, {"success": False, "message": "Unauthorized"})
    assert not Email.objects.exists()


def test_without_a_process_token_only_api_tokens_are_accepted(app, settings):
    settings.PROCESS_API_TOKEN = ""
    assert push(auth="Bearer ").status_code == 401
    assert push(auth="").status_code == 401
    _, token = ApiToken.issue("apps-script", ["ingress"])
    assert push(auth=f"Bearer {token}").status_code == 200


def test_the_bare_token_is_accepted_as_the_original_did(app):
    assert push(auth=TOKEN).json()["status"] == "queued"


def test_an_api_token_needs_the_ingress_scope(app):
    _, wrong = ApiToken.issue("deployer", ["deploy"])
    row, right = ApiToken.issue("apps-script", ["ingress"])
    assert push(auth=f"Bearer {wrong}").status_code == 401
    assert push(auth=f"Bearer {right}").json()["status"] == "queued"
    row.refresh_from_db()
    assert row.last_used_at is not None
    row.revoked_at = timezone.now()
    row.save()
    assert push(apps_script_payload(subject="other"), auth=f"Bearer {right}").status_code == 401


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("not json", "Invalid JSON payload"),
        ("", "Invalid JSON payload"),
        ("[1, 2]", "Invalid JSON payload"),
        ('"a string"', "Invalid JSON payload"),
        (b'{"sender": "a@b.c", "body": "\xff\xfe caf\xe9"}', "Invalid JSON payload"),
        ('{"sender": "a@b.c", "body": "x", "subject": 1' + "0" * 5000 + "}", "Invalid JSON payload"),
        ("[" * 100000 + "]" * 100000, "Invalid JSON payload"),
        ('{"body": "<p>x</p>"}', "Missing field: sender"),
        ('{"sender": null, "body": "<p>x</p>"}', "Missing field: sender"),
        ('{"sender": "   ", "body": "<p>x</p>"}', "Missing field: sender"),
        ('{"sender": "a@b.c"}', "Missing field: body"),
        ('{"sender": "a@b.c", "body": ""}', "Missing field: body"),
        ('{"sender": "a@b.c", "body": "x", "subject": 42}', "Invalid field: subject must be a string"),
        ('{"sender": ["a@b.c"], "body": "x"}', "Invalid field: sender must be a string"),
        ('{"sender": "a@b.c", "body": {"html": "x"}}', "Invalid field: body must be a string"),
        ('{"sender": "a@b.c", "body": "x", "date": 1700000000}', "Invalid field: date must be a string"),
        ('{"sender": "a@b.c", "body": "x", "snippet": false}', "Invalid field: snippet must be a string"),
    ],
)
def test_bad_input_is_refused_with_the_reason_and_writes_nothing(app, raw, message):
    response = push(raw=raw)
    assert (response.status_code, response.json()) == (400, {"success": False, "message": message})
    assert not Email.objects.exists() and not RawMessage.objects.exists()


def test_nul_characters_and_lone_surrogates_are_stored_cleaned(app):
    body = r'{"sender": "a@b.example", "body": "<p>x\u0000y \ud800 https://fromsmash.com/Z9</p>", "subject": "S\u0000"}'
    assert push(raw=body).json()["status"] == "queued"
    email = Email.objects.get()
    assert email.subject == "S" and "\x00" not in email.text and "\ud800" not in email.text


def test_the_kill_switch_answers_409_until_switched_back_on(app):
    GmailIngress.objects.update_or_create(pk=GmailIngress.load().pk, defaults={"enabled": False})
    response = push()
    assert (response.status_code, response.json()) == (409, {"success": False, "message": "Gmail ingress disabled"})
    assert not Email.objects.exists()
    GmailIngress.objects.update(enabled=True)
    assert push().json()["status"] == "queued"


def test_a_body_over_the_cap_is_refused_with_413_before_anything_is_written(app, settings):
    settings.GMAIL_INGRESS_MAX_BYTES = 4096
    response = push(apps_script_payload(body="<p>" + "x" * 5000 + "</p>"))
    assert response.status_code == 413
    assert response.json() == {"success": False, "message": "Payload too large: the limit is 4096 bytes"}
    assert not Email.objects.exists()


def test_a_10_mb_body_is_refused_with_the_default_cap(app):
    response = push(apps_script_payload(body="<p>" + "x" * (10 * 1024 * 1024) + "</p>"))
    assert response.status_code == 413
    assert not Email.objects.exists()


def test_a_body_just_under_the_cap_is_taken_and_detection_reads_a_capped_copy(app, settings):
    settings.GMAIL_INGRESS_MAX_BYTES = 3 * 1024 * 1024
    settings.MAIL_MAX_HTML_BYTES = 1024 * 1024
    body = "<p>é https://fromsmash.com/Big1</p>" + "é" * (1024 * 1024)
    raw = json.dumps(apps_script_payload(body=body), ensure_ascii=False)  # as JSON.stringify: 2 MB of UTF-8
    assert push(raw=raw).json()["status"] == "queued"
    email = Email.objects.get()
    assert len(email.text.encode()) <= 1024 * 1024 and email.links[0]["raw_url"] == "https://fromsmash.com/Big1"


def test_a_re_push_is_already_processed_and_never_recorded_twice(app):
    first = push().json()
    again = push(apps_script_payload(snippet="another snippet", body="<p>edited body</p>")).json()
    assert again == {"success": True, "status": "already_processed", "email_id": first["email_id"]}
    assert Email.objects.count() == 1 and Delivery.objects.count() == 1


def test_the_identity_is_subject_clean_sender_and_date(app):
    first = push(apps_script_payload(sender="Média Solution <Missions@Media-Solution.example>")).json()
    same = push(apps_script_payload(sender="missions@media-solution.example")).json()
    later = push(apps_script_payload(date="2026-11-03T08:16:00.000Z")).json()
    assert same["status"] == "already_processed" and same["email_id"] == first["email_id"]
    assert later["status"] == "queued" and later["email_id"] != first["email_id"]


def test_a_sender_outside_the_allow_list_is_skipped_and_remembered(app):
    GmailIngress.objects.update_or_create(
        pk=GmailIngress.load().pk, defaults={"allowed_senders": "planning@agence.example"}
    )
    response = push().json()
    assert response["status"] == "skipped_sender_not_allowed" and response["success"] is True
    email = Email.objects.get()
    assert email.decision == "skipped_sender" and email.text == "" and not RawMessage.objects.exists()
    assert not Delivery.objects.exists()
    assert push().json()["status"] == "already_processed"


def test_migrate_seeds_the_allow_list_from_gmail_sender_allowlist_once(settings):
    from mail.bootstrap import create_ingress_settings

    GmailIngress.objects.all().delete()
    settings.LEGACY_GMAIL_INGRESS = {"allowed_senders": "a@x.example,b@y.example", "timezone": "Europe/Paris"}
    assert create_ingress_settings().allowed_sender_list() == ["a@x.example", "b@y.example"]
    settings.LEGACY_GMAIL_INGRESS = {"allowed_senders": "", "timezone": "UTC"}
    assert create_ingress_settings().allowed_sender_list() == ["a@x.example", "b@y.example"]
    assert GmailIngress.objects.count() == 1


def test_replies_are_skipped_like_polled_mail(app):
    response = push(apps_script_payload(subject="RE: Média Solution - Missions Recadrage - Lot 42")).json()
    assert (response["status"], response["decision"]) == ("queued", "skipped_reply")
    assert not Delivery.objects.exists()


def test_a_lot_group_is_handled_once_like_polled_mail(app):
    push(apps_script_payload(subject="Média Solution - Missions Recadrage - Lot 50"))
    again = push(apps_script_payload(subject="Média Solution - Missions Recadrage - Lot 50 (rappel)")).json()
    assert again["decision"] == "skipped_duplicate_group"
    assert Delivery.objects.count() == 1


def test_routing_rules_apply_to_pushed_mail(app):
    special = Endpoint.objects.create(name="special", url=app.url + "/special")
    rule = RoutingRule.objects.create(name="Média", endpoint=special, priority="high", stop_processing=True)
    RuleCondition.objects.create(rule=rule, field="sender", operator="contains", value="media-solution")
    push()
    [delivery] = Delivery.objects.all()
    assert delivery.endpoint == special
    assert delivery.routing_rule == {"id": rule.pk, "name": "Média", "priority": "high"}


def test_with_sending_switched_off_the_push_is_held_not_refused(app):
    schedule = SendingSchedule.load()
    schedule.sending_enabled = False
    schedule.save()
    response = push().json()
    assert (response["status"], response["decision"]) == ("queued", "held")
    assert Delivery.objects.get().status == "held"


def test_the_google_check_refuses_other_addresses(app, settings):
    settings.GMAIL_INGRESS_IP_CHECK_ENABLED = True
    response = push()  # from 127.0.0.1, whose name is not Google's
    assert (response.status_code, response.json()) == (
        403,
        {"success": False, "message": "Forbidden: IP not from Google"},
    )
    assert not Email.objects.exists()


def test_the_google_check_accepts_google_names_that_resolve_back(app, settings):
    settings.GMAIL_INGRESS_IP_CHECK_ENABLED = True
    google = "rate-limited-proxy-66-249-84-1.google.com"
    with (
        mock.patch("signalserver.ingress.reverse_dns", autospec=True, return_value=google) as reverse,
        mock.patch("signalserver.ingress.forward_dns", autospec=True, return_value={"66.249.84.1"}),
    ):
        assert push(REMOTE_ADDR="66.249.84.1", HTTP_X_FORWARDED_FOR="66.249.84.1").status_code == 200
        assert push(apps_script_payload(subject="2"), HTTP_X_FORWARDED_FOR="66.249.84.1").status_code == 200
    reverse.assert_called_once_with("66.249.84.1")  # the answer is cached


def test_the_google_check_refuses_a_google_name_that_does_not_resolve_back(app, settings):
    settings.GMAIL_INGRESS_IP_CHECK_ENABLED = True
    with (
        mock.patch("signalserver.ingress.reverse_dns", autospec=True, return_value="spoof.google.com"),
        mock.patch("signalserver.ingress.forward_dns", autospec=True, return_value={"142.250.1.1"}),
    ):
        assert push(HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403


def test_only_post_is_answered(app):
    assert Client().get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 405


def test_the_admin_and_dashboard_show_a_pushed_email_and_its_raw_json(app):
    replay_apps_script()
    admin = User.objects.create_superuser("root", password="pw")
    browser = Client()
    browser.force_login(admin)
    email = Email.objects.get()
    page = browser.get(f"/admin/mail/email/{email.pk}/change/").content.decode()
    assert "Download .json" in page
    raw = browser.get(f"/admin/mail/email/{email.pk}/raw/")
    assert raw["Content-Type"] == "application/json" and raw.content == FIXTURE["body"].encode()
    assert "Gmail push ingress" in browser.get("/admin/mail/gmailingress/").content.decode()
    assert "Gmail push" in browser.get("/").content.decode()  # the dashboard's email list


_text = st.one_of(st.none(), st.text(max_size=300), st.integers(), st.booleans(), st.lists(st.text(max_size=5)))


def _containers(inner: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)


_json_value = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=50), _containers, max_leaves=20
)
_fields = st.fixed_dictionaries(
    {},
    optional={name: _text for name in ("subject", "sender", "date", "body", "snippet")},
)
_bodies = st.one_of(
    st.binary(max_size=500),
    _json_value.map(lambda v: json.dumps(v).encode()),
    _fields.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda keep, tail: FIXTURE["body"].encode()[:keep] + tail, st.integers(0, 1500), st.binary(max_size=20)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies)
def test_a_fuzzed_body_never_gives_a_500_and_never_half_writes(app, body):
    before = Email.objects.count()
    response = push(raw=body)
    assert response.status_code in (200, 400)
    created = Email.objects.count() - before
    if response.status_code == 400:
        assert created == 0
    elif response.json()["status"] == "already_processed":
        assert created == 0
    else:
        email = Email.objects.get(email_id=response.json()["email_id"], source="gmail_push")
        assert created == 1 and email.decision and email.reason and email.sender


def test_the_readme_check_push_is_recorded_and_not_sent(app):
    check = {"subject": "signalserver check", "sender": "you@example.org", "date": "2026-01-01T00:00:00.000Z"}
    first = push({**check, "body": "<p>check</p>"}).json()
    assert (first["status"], first["decision"]) == ("queued", "skipped_no_links")
    assert push({**check, "body": "<p>check</p>"}).json()["status"] == "already_processed"
    assert not Delivery.objects.exists()


def test_a_pushed_order_skipped_for_want_of_an_endpoint_goes_out_once_reprocessed(
    app, webhook_receiver, django_capture_on_commit_callbacks
):
    from mail.reprocess import reprocess

    Endpoint.objects.update(is_default=False)
    assert push().json()["status"] == "queued"
    email = Email.objects.get(source="gmail_push")
    assert email.mailbox is None and email.decision == "skipped_no_endpoint"
    Endpoint.objects.update(is_default=True)
    with django_capture_on_commit_callbacks(execute=True):
        reprocess([email.pk])
    with django_capture_on_commit_callbacks(execute=True):
        reprocess([email.pk])  # again: nothing new to send
    email.refresh_from_db()
    assert email.decision == "delivered" and Delivery.objects.filter(email=email).count() == 1
    assert len(webhook_receiver.received) == 1
