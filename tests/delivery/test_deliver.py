"""Delivering to a real local receiver: signatures, payload, retries, failures, resend."""

from __future__ import annotations

import base64
import datetime as dt
import subprocess
import sys

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone
from standardwebhooks import Webhook

from delivery.models import Attempt, Delivery, Endpoint, RoutingRule, RuleCondition
from delivery.outbox import plan
from delivery.sender import claim_next, process
from delivery.tasks import send_due
from tests.conftest import ROOT, base_env
from tests.delivery.conftest import make_email
from tests.delivery.receiver import Reply

pytestmark = pytest.mark.django_db
NOON = dt.datetime(2026, 11, 3, 11, 0, tzinfo=dt.UTC)  # 12:00 in Paris, a Tuesday


@pytest.fixture(autouse=True)
def _noon(time_machine):
    time_machine.move_to(NOON, tick=True)


def run_until_idle(time_machine, max_rounds: int = 10) -> None:
    """Send what is due; jump to the next retry time; repeat."""
    for _ in range(max_rounds):
        send_due()
        upcoming = Delivery.objects.filter(status="pending").order_by("next_attempt_at").first()
        if upcoming is None:
            return
        assert upcoming.next_attempt_at is not None
        time_machine.move_to(upcoming.next_attempt_at + dt.timedelta(seconds=1), tick=True)


def test_the_webhook_is_signed_and_verifies_with_standardwebhooks(box, endpoint, schedule, receiver):
    email = make_email(box)
    [delivery] = plan(email)
    send_due()
    [request] = receiver.received
    payload = Webhook(str(endpoint.secret)).verify(request.body, request.headers)
    assert request.headers["webhook-id"] == delivery.webhook_id
    assert payload["microsoft_graph_email_id"] == email.email_id
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    email.refresh_from_db()
    assert email.decision == "delivered"


def test_a_tampered_body_does_not_verify(box, endpoint, schedule, receiver):
    plan(make_email(box))
    send_due()
    [request] = receiver.received
    with pytest.raises(Exception, match="signature"):
        Webhook(str(endpoint.secret)).verify(request.body.replace(b"Lot 42", b"Lot 43"), request.headers)


def test_golden_payload_for_recadrage_inside_the_window(box, endpoint, schedule, receiver):
    schedule.window_start, schedule.window_end = "09h00", "19h00"
    schedule.save()
    email = make_email(box)
    plan(email)
    send_due()
    assert receiver.received[0].json() == {
        "microsoft_graph_email_id": "0123456789abcdef0123456789abcdef",
        "subject": "Média Solution - Missions Recadrage - Lot 42",
        "receivedDateTime": "Tue, 03 Nov 2026 09:15:00 +0100",
        "sender_address": "Média Solution <missions@media-solution.example>",
        "sender_email": "missions@media-solution.example",
        "bodyPreview": email.text[:200],
        "email_content": email.text,
        "detector": "recadrage",
        "delivery_time": "09h00",
        "webhooks_time_start": "maintenant",
        "webhooks_time_end": "19h00",
        "delivery_links": [{"provider": "fromsmash", "raw_url": "https://fromsmash.com/Lot42"}],
    }


def test_golden_payload_for_desabo_before_the_window_without_content(box, endpoint, schedule, receiver, time_machine):
    schedule.window_start, schedule.window_end = "13h00", "19h00"
    schedule.save()
    Endpoint.objects.update(include_email_content=False)
    email = make_email(box, detector="desabonnement_journee_tarifs", delivery_time="", links=[], text="journée")
    with pytest.MonkeyPatch.context() as m:
        m.setattr("django.conf.settings.ALLOW_CUSTOM_WEBHOOK_WITHOUT_LINKS", True)
        plan(email)
    send_due()
    body = receiver.received[0].json()
    assert "email_content" not in body and "delivery_time" not in body and "delivery_links" not in body
    assert body["detector"] == "desabonnement_journee_tarifs"
    assert (body["webhooks_time_start"], body["webhooks_time_end"]) == ("13h00", "19h00")


def test_receiver_fails_three_times_then_succeeds_with_one_webhook_id(box, endpoint, schedule, receiver, time_machine):
    receiver.then(Reply(500), Reply(close=True), Reply(429, headers={"Retry-After": "120"}))
    [delivery] = plan(make_email(box))
    run_until_idle(time_machine)
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert delivery.attempt_count == 4
    assert {r.headers["webhook-id"] for r in receiver.received} == {delivery.webhook_id}
    outcomes = list(Attempt.objects.order_by("started").values_list("outcome", "status_code"))
    assert outcomes == [("failed", 500), ("failed", None), ("failed", 429), ("delivered", 200)]
    assert "Retry-After" not in Attempt.objects.filter(status_code=429).get().error
    bodies = {r.body for r in receiver.received}
    assert len(bodies) == 1  # the same payload on every attempt


def test_retry_after_is_honoured(box, endpoint, schedule, receiver):
    receiver.then(Reply(503, headers={"Retry-After": "3600"}))
    [delivery] = plan(make_email(box))
    send_due()
    delivery.refresh_from_db()
    assert delivery.next_attempt_at is not None
    assert delivery.next_attempt_at - NOON >= dt.timedelta(seconds=3590)


def test_a_receiver_down_for_the_whole_schedule_fails_then_resend_delivers(
    box, endpoint, schedule, receiver, time_machine, client: Client, admin_user
):
    receiver.default = Reply(500)
    [delivery] = plan(make_email(box))
    run_until_idle(time_machine)
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.attempt_count == 7
    assert "HTTP 500" in delivery.last_error
    receiver.default = Reply(200)
    client.force_login(admin_user)  # after the time travel, so the session is fresh
    client.post("/admin/delivery/delivery/", {"action": "resend", "_selected_action": [delivery.pk]})
    send_due()
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert len(receiver.received) == 8


def test_a_permanent_client_error_fails_at_once(box, endpoint, schedule, receiver):
    receiver.then(Reply(404, body=b"not here"))
    [delivery] = plan(make_email(box))
    send_due()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempt_count) == ("failed", 1)
    assert delivery.last_error == "HTTP 404: not here"


def test_the_original_receiver_contract_needs_success_true(box, endpoint, schedule, receiver, time_machine):
    Endpoint.objects.update(success_rule="json_success")
    receiver.then(Reply(200, body={"success": False, "message": "sender unknown"}), Reply(422, body={"success": False}))
    assert len(plan(make_email(box))) == 1
    run_until_idle(time_machine)
    attempts = list(Attempt.objects.order_by("started").values_list("error", flat=True))
    assert attempts == ["HTTP 200: sender unknown", "HTTP 422: Unknown error", ""]


def test_a_killed_worker_s_claim_expires_and_the_delivery_completes(box, endpoint, schedule, receiver, time_machine):
    [delivery] = plan(make_email(box))
    claimed = claim_next()
    assert claimed is not None and claim_next() is None  # claimed once, not twice
    time_machine.move_to(NOON + dt.timedelta(minutes=15), tick=True)  # the worker died; its claim expired
    again = claim_next()
    assert again is not None and again.pk == delivery.pk
    process(again)
    assert [r.headers["webhook-id"] for r in receiver.received] == [delivery.webhook_id]


def test_private_and_loopback_targets_are_refused_at_save_and_at_send(box, schedule, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    for url in (
        "https://127.0.0.1/hook",
        "https://10.1.2.3/x",
        "https://169.254.169.254/latest",
        "http://example.com/",
    ):
        with pytest.raises(Exception, match=r"private or reserved|Only https"):
            Endpoint(name="x", url=url).full_clean()
    Endpoint.objects.create(name="bad", url="https://localhost/hook", is_default=True)
    [delivery] = plan(make_email(box))
    send_due()
    delivery.refresh_from_db()
    assert delivery.status == "failed" and "private or reserved" in delivery.last_error


def test_rate_limit_holds_deliveries_and_releases_them_later(box, endpoint, schedule, receiver, time_machine):
    Endpoint.objects.update(rate_limit_per_hour=2)
    for n in range(3):
        plan(make_email(box, identity=f"<rl{n}@x>"))
    send_due()
    assert len(receiver.received) == 2
    held = Delivery.objects.get(status="held")
    assert "rate limit of 2" in held.reason
    assert held.next_attempt_at is not None
    time_machine.move_to(held.next_attempt_at + dt.timedelta(seconds=1), tick=True)
    send_due()
    assert len(receiver.received) == 3


def test_a_held_email_goes_when_the_window_opens(box, endpoint, schedule, receiver, time_machine):
    schedule.window_start, schedule.window_end = "14h00", "19h00"
    schedule.save()
    email = make_email(box, detector="", delivery_time="")
    assert len(plan(email)) == 1
    email.refresh_from_db()
    assert email.decision == "held" and email.held_until == dt.datetime(2026, 11, 3, 13, 0, tzinfo=dt.UTC)
    send_due()
    assert receiver.received == []
    time_machine.move_to(dt.datetime(2026, 11, 3, 13, 0, 5, tzinfo=dt.UTC), tick=True)
    send_due()
    assert receiver.received[0].json()["webhooks_time_start"] == "maintenant"


def test_recadrage_outside_the_window_is_skipped(box, endpoint, schedule):
    schedule.window_start, schedule.window_end = "14h00", "19h00"
    schedule.save()
    email = make_email(box)
    assert plan(email) == []
    email.refresh_from_db()
    assert email.decision == "skipped_outside_window"


def test_no_links_is_skipped_unless_allowed(box, endpoint, schedule):
    email = make_email(box, links=[])
    assert plan(email) == []
    email.refresh_from_db()
    assert email.decision == "skipped_no_links"


def test_routing_first_match_wins_and_the_default_also_receives_once(box, endpoint, schedule, receiver):
    other = Endpoint.objects.create(name="urgent", url=receiver.url.replace("/hook", "/urgent"))
    first = RoutingRule.objects.create(name="lots", order=1, endpoint=other, priority="high")
    RuleCondition.objects.create(rule=first, field="subject", operator="contains", value="missions recadrage")
    second = RoutingRule.objects.create(name="never", order=2, endpoint=endpoint)
    RuleCondition.objects.create(
        rule=second, field="sender", operator="equals", value="missions@media-solution.example"
    )
    deliveries = plan(make_email(box))
    assert sorted(d.endpoint.name for d in deliveries) == ["app", "urgent"]
    send_due()
    assert sorted(r.path for r in receiver.received) == ["/hook", "/urgent"]
    assert all(
        r.json()["routing_rule"] == {"id": first.pk, "name": "lots", "priority": "high"} for r in receiver.received
    )


def test_routing_stop_processing_skips_the_default(box, endpoint, schedule, receiver):
    other = Endpoint.objects.create(name="only", url=receiver.url.replace("/hook", "/only"))
    rule = RoutingRule.objects.create(name="stop", endpoint=other, stop_processing=True)
    RuleCondition.objects.create(rule=rule, field="body", operator="regex", value=r"fromsmash\.com/\w+")
    assert [d.endpoint.name for d in plan(make_email(box))] == ["only"]


def test_routing_rule_to_the_default_endpoint_sends_once(box, endpoint, schedule):
    rule = RoutingRule.objects.create(name="same", endpoint=endpoint)
    RuleCondition.objects.create(rule=rule, field="subject", operator="contains", value="LOT 42")
    assert len(plan(make_email(box))) == 1


def test_a_catastrophic_regex_cannot_hang_the_worker(box, endpoint, schedule):
    import time

    rule = RoutingRule.objects.create(name="redos", endpoint=endpoint)
    RuleCondition.objects.create(rule=rule, field="body", operator="regex", value=r"^(a+)+$")
    started = time.monotonic()
    plan(make_email(box, text="a" * 50_000 + "!"))
    assert time.monotonic() - started < 2  # RE2 is linear; Python's re would run for ages


@pytest.mark.parametrize(
    ("pattern", "sentence"),
    [
        ("(unclosed", "A parenthesis is not closed in '(unclosed': add the missing “)”."),
        (r"(?<=Lot )\d+", "has no look-behind such as (?<=…) or (?<!…). Rewrite the pattern without it"),
        (r"Lot (?!0)", "has no look-ahead such as (?=…) or (?!…)"),
        (r"(\w+) \1", "has no back-references such as \\1"),
        ("[a-z", "A character class is not closed in '[a-z': add the missing “]”."),
        ("a**", "A repetition (*, + or ?) is doubled at '**'."),
    ],
)
def test_an_invalid_regex_is_refused_by_the_form_with_a_sentence(endpoint, pattern, sentence):
    rule = RoutingRule.objects.create(name="bad", endpoint=endpoint)
    with pytest.raises(ValidationError) as refused:
        RuleCondition(rule=rule, field="subject", operator="regex", value=pattern).full_clean()
    [message] = refused.value.message_dict["value"]
    assert sentence in message
    assert "b'" not in message and "perl" not in message


def test_re2_writes_nothing_of_its_own_to_stderr():
    code = (
        "import django; django.setup(); from delivery.routing import compile_pattern\n"
        "for p in ('(?<=x)a', '(a', '\\\\1'):\n"
        "    try: compile_pattern(p, False)\n"
        "    except ValueError: pass\n"
    )
    env = base_env(DJANGO_SETTINGS_MODULE="tests.settings")
    result = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "re2.cc" not in result.stderr and "E0000" not in result.stderr


def test_network_failures_are_recorded_in_words_without_the_url(box, schedule, local_targets, receiver, caplog):
    from tests.conftest import free_port

    port = free_port()
    down = Endpoint.objects.create(name="down", url=f"http://127.0.0.1:{port}/hook?key=s3cret", is_default=True)
    [delivery] = plan(make_email(box))
    send_due()
    delivery.refresh_from_db()
    assert delivery.last_error == f"127.0.0.1:{port} refused the connection: is the receiving application running?"
    assert "Connection refused" in caplog.text and "s3cret" not in caplog.text + delivery.last_error
    receiver.then(Reply(close=True))
    Endpoint.objects.filter(pk=down.pk).update(url=receiver.url)
    Delivery.objects.update(next_attempt_at=timezone.now())
    send_due()
    delivery.refresh_from_db()
    where = receiver.url.removeprefix("http://").split("/")[0]
    assert delivery.last_error == f"The connection to {where} failed or was cut before an answer came."


def test_credentials_in_the_endpoint_url_go_as_basic_authentication_and_not_into_the_log(
    box, schedule, local_targets, receiver, caplog
):
    host = receiver.url.removeprefix("http://")
    Endpoint.objects.create(name="app", url=f"http://hook%40app:s3cr%3At@{host}?key=1", is_default=True)
    [delivery] = plan(make_email(box))
    send_due()
    [request] = receiver.received
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"hook@app:s3cr:t").decode()
    assert request.path == "/hook?key=1"
    delivery.refresh_from_db()
    assert delivery.status == "delivered" and "s3cr" not in caplog.text
