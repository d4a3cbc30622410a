"""Make.com scenarios follow the mailboxes' switch and vacation, toggled only on a change of state."""

from __future__ import annotations

import datetime as dt
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from delivery import http
from mail.models import Mailbox
from scenarios import switch
from scenarios.models import ScenarioToggle
from tests.conftest import free_port, run_together
from tests.delivery.receiver import Receiver, Reply

pytestmark = pytest.mark.django_db

KEY = "make-api-key-0123456789"
STARTED = {"scenario": {"id": 7448207, "isActive": True}}
UNAUTHORIZED = {"detail": "Invalid token", "message": "Access denied", "code": "SC401"}


@pytest.fixture
def make_api(settings, time_machine):
    """A local server answering as the Make API does."""
    time_machine.move_to(dt.datetime(2026, 7, 1, 10, tzinfo=dt.UTC), tick=False)
    with Receiver() as server:
        server.default = Reply(body=STARTED)
        settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
        settings.MAKECOM_API_KEY = KEY
        settings.MAKE_API_BASE_URL = server.url.removesuffix("/hook") + "/api/v2"
        settings.MAKE_API_AUTH_TYPE = "Token"
        settings.MAKE_API_ORG_ID = ""
        settings.MAKE_WEBHOOK_CONTROL_URL = settings.MAKE_WEBHOOK_API_KEY = ""
        settings.MAKE_SCENARIOS = {"autorepondeur": 7448207, "recadrage": 6649843}
        yield server


@pytest.fixture
def box(db) -> Mailbox:
    return Mailbox.objects.create(name="orders", host="imap.example", username="u", password="p")


def requests_made(server: Receiver) -> list[tuple[str, bytes]]:
    return [(r.path, r.body) for r in server.received]


def test_nothing_happens_without_make_credentials(make_api, box, settings):
    settings.MAKECOM_API_KEY = ""
    assert switch.sync() == 0
    assert not make_api.received and not ScenarioToggle.objects.exists()


def test_nothing_happens_without_a_mailbox_to_follow(make_api, db):
    assert switch.sync() == 0
    assert not make_api.received


def test_the_first_run_starts_both_scenarios_with_the_original_request(make_api, box):
    assert switch.sync() == 2
    assert requests_made(make_api) == [
        ("/api/v2/scenarios/7448207/start", b""),
        ("/api/v2/scenarios/6649843/start", b""),
    ]
    for request in make_api.received:
        assert request.headers["authorization"] == f"Token {KEY}"
        assert "x-organization" not in request.headers
    toggles = ScenarioToggle.objects.order_by("pk")
    assert [(t.scenario, t.action, t.status, t.status_code, t.via) for t in toggles] == [
        ("autorepondeur", "start", "done", 200, "api"),
        ("recadrage", "start", "done", 200, "api"),
    ]
    assert "orders is switched on" in toggles[0].reason


def test_nothing_is_sent_while_the_state_does_not_change(make_api, box):
    switch.sync()
    switch.sync()
    switch.sync()
    assert len(make_api.received) == 2 and ScenarioToggle.objects.count() == 2


def test_a_vacation_stops_the_scenarios_and_its_end_starts_them_again(make_api, box, time_machine):
    box.vacation_start, box.vacation_end = dt.date(2026, 8, 1), dt.date(2026, 8, 15)
    box.save()
    switch.sync()
    time_machine.move_to(dt.datetime(2026, 7, 31, 22, 30, tzinfo=dt.UTC))  # 00:30 on 1 August in Paris
    switch.sync()
    time_machine.move_to(dt.datetime(2026, 8, 10, 12, tzinfo=dt.UTC))
    switch.sync()
    time_machine.move_to(dt.datetime(2026, 8, 16, 6, tzinfo=dt.UTC))
    switch.sync()
    actions = [path.rsplit("/", 1)[1] for path, _ in requests_made(make_api)]
    assert actions == ["start", "start", "stop", "stop", "start", "start"]
    stop = ScenarioToggle.objects.filter(action="stop").first()
    assert stop is not None and "on vacation until 2026-08-15" in stop.reason


def test_switching_the_mailbox_off_stops_them_and_any_other_mailbox_keeps_them(make_api, box):
    switch.sync()
    Mailbox.objects.update(enabled=False)
    switch.sync()
    Mailbox.objects.create(name="second", host="imap.example", username="u2", password="p")
    switch.sync()
    actions = [path.rsplit("/", 1)[1] for path, _ in requests_made(make_api)]
    assert actions == ["start", "start", "stop", "stop", "start", "start"]


def test_bearer_auth_and_the_organization_header(make_api, box, settings):
    settings.MAKE_API_AUTH_TYPE = "Bearer"
    settings.MAKE_API_ORG_ID = "4242"
    switch.sync()
    assert {r.headers["authorization"] for r in make_api.received} == {f"Bearer {KEY}"}
    assert {r.headers["x-organization"] for r in make_api.received} == {"4242"}


def test_the_control_webhook_gets_the_original_body_and_needs_200(make_api, box, settings):
    settings.MAKECOM_API_KEY = ""
    settings.MAKE_WEBHOOK_CONTROL_URL = make_api.url
    settings.MAKE_WEBHOOK_API_KEY = "control-key"
    make_api.then(Reply(status=200, body=b"Accepted"), Reply(status=202, body=b"Accepted"))
    assert switch.sync() == 1
    assert [r.path for r in make_api.received] == ["/hook", "/hook"]
    assert [r.json() for r in make_api.received] == [
        {"action": "start", "scenario_id": 7448207, "api_key": "control-key"},
        {"action": "start", "scenario_id": 6649843, "api_key": "control-key"},
    ]
    assert make_api.received[0].headers["content-type"] == "application/json"
    failed = ScenarioToggle.objects.get(status="failed")
    assert (failed.scenario, failed.via, failed.status_code) == ("recadrage", "control_webhook", 202)


def test_the_api_counts_any_2xx_as_done(make_api, box):
    make_api.then(Reply(status=204, body=b""))
    assert switch.sync() == 2


def test_a_failed_toggle_is_recorded_and_retried_until_done(make_api, box, time_machine, caplog):
    make_api.then(Reply(status=401, body=UNAUTHORIZED), Reply(status=500, body=b"upstream down"))
    assert switch.sync() == 0
    failed = list(ScenarioToggle.objects.order_by("pk"))
    assert [(t.status, t.status_code, t.last_error, t.attempts) for t in failed] == [
        ("failed", 401, "HTTP 401", 1),
        ("failed", 500, "HTTP 500", 1),
    ]
    assert "Access denied" in failed[0].response_snippet
    assert "start of scenario autorepondeur (id=7448207) failed (attempt 1): HTTP 401; retry in 60 s" in caplog.text
    assert KEY not in caplog.text
    assert switch.sync() == 0 and len(make_api.received) == 2  # not due yet
    time_machine.shift(61)
    assert switch.sync() == 2
    assert set(ScenarioToggle.objects.values_list("status", "attempts")) == {("done", 2)}
    assert ScenarioToggle.objects.count() == 2  # retried, not re-planned


def test_retries_wait_longer_each_time(make_api, box, time_machine):
    make_api.default = Reply(status=503, body=b"")
    delays: list[int] = []
    for _ in range(8):
        switch.sync()
        toggle = ScenarioToggle.objects.get(scenario="recadrage")
        delays.append(round((toggle.next_attempt_at - toggle.created).total_seconds()) - sum(delays))
        time_machine.move_to(toggle.next_attempt_at)
    assert delays == [60, 120, 300, 600, 1800, 3600, 3600, 3600]


def test_a_network_error_is_a_failure_with_its_reason(make_api, box, settings):
    settings.MAKE_API_BASE_URL = f"http://127.0.0.1:{free_port()}/api/v2"
    switch.sync()
    toggle = ScenarioToggle.objects.get(scenario="autorepondeur")
    assert toggle.status == "failed" and toggle.status_code is None
    assert "refused the connection" in toggle.last_error


def test_a_failed_stop_no_longer_wanted_is_superseded_and_the_start_sent_again(make_api, box, time_machine):
    switch.sync()  # started
    Mailbox.objects.update(enabled=False)
    make_api.then(Reply(status=500, body=b""), Reply(status=500, body=b""))
    switch.sync()  # the stops fail
    Mailbox.objects.update(enabled=True)
    switch.sync()
    rows = [(t.action, t.status) for t in ScenarioToggle.objects.filter(scenario="recadrage").order_by("pk")]
    assert rows == [("start", "done"), ("stop", "superseded"), ("start", "done")]
    assert [path.rsplit("/", 1)[1] for path, _ in requests_made(make_api)][-2:] == ["start", "start"]


def test_the_request_uses_the_original_timeout(make_api, box):
    answer = http.Response(status_code=200, body=b"{}", headers={}, duration_ms=3)
    with mock.patch("delivery.http.post", autospec=True, return_value=answer) as post:
        switch.sync()
    post.assert_any_call(make_api.url.removesuffix("/hook") + "/api/v2/scenarios/6649843/start", b"", mock.ANY, 15)


def test_a_toggle_is_claimed_by_one_worker_only(make_api, box):
    switch.plan(timezone.now())
    toggle = ScenarioToggle.objects.first()
    assert toggle is not None
    now = timezone.now()
    assert switch.claim(toggle.pk, now) is True
    assert switch.claim(toggle.pk, now) is False
    # A sender that died leaves the claim to expire; then the toggle is taken again.
    assert switch.claim(toggle.pk, now + dt.timedelta(seconds=switch.CLAIM_SECONDS + 1)) is True


@pytest.mark.django_db(transaction=True)
def test_simultaneous_schedulers_plan_each_toggle_once(make_api, box):
    run_together(lambda: switch.plan(timezone.now()), threads=4)
    assert sorted(ScenarioToggle.objects.values_list("scenario", flat=True)) == ["autorepondeur", "recadrage"]


def test_the_admin_lists_toggles_and_retries_failed_ones(make_api, box):
    make_api.then(Reply(status=500, body=b""), Reply(status=500, body=b""))
    switch.sync()
    browser = Client()
    browser.force_login(User.objects.create_superuser("root", password="pw"))
    page = browser.get("/admin/scenarios/scenariotoggle/?status__exact=failed").content.decode()
    assert "HTTP 500" in page and "Failed: will be retried" in page
    ids = list(ScenarioToggle.objects.values_list("pk", flat=True))
    browser.post("/admin/scenarios/scenariotoggle/", {"action": "retry_now", "_selected_action": ids})
    assert set(ScenarioToggle.objects.values_list("status", flat=True)) == {"done"}


def test_the_job_is_scheduled_every_minute(db):
    from django.core.management import call_command
    from django_q.models import Schedule

    call_command("migrate", verbosity=0)
    schedule = Schedule.objects.get(name="make-scenarios")
    assert (schedule.func, schedule.minutes) == ("scenarios.tasks.sync_scenarios", 1)
