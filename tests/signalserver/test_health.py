"""/health reports every dependency; /health/live and /api/ping are cheap."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from mail.models import Mailbox
from signalserver.models import WorkerHeartbeat
from tests.conftest import free_port

pytestmark = pytest.mark.django_db


def test_live_answers_without_touching_anything(client: Client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_health_is_ok_when_database_and_cluster_are_fine(client: Client):
    WorkerHeartbeat.beat("qcluster@test", "test", 1)
    response = client.get("/health")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert body["failed"] == []
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["qcluster"]["ok"] is True


def test_health_names_a_cluster_that_never_reported(client: Client):
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["failed"] == ["qcluster"]
    assert "qcluster" in response.json()["checks"]["qcluster"]["error"]


def test_health_names_a_cluster_that_went_quiet(client: Client):
    WorkerHeartbeat.objects.create(name="qcluster@old", seen_at=timezone.now() - dt.timedelta(minutes=10))
    response = client.get("/health")
    assert response.status_code == 503
    assert "last heartbeat 600 s ago" in response.json()["checks"]["qcluster"]["error"]


def test_health_turns_503_and_names_redis_when_redis_is_unreachable(client: Client):
    WorkerHeartbeat.beat("qcluster@test", "test", 1)
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0"):
        response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["redis"]
    assert body["checks"]["redis"]["ok"] is False
    assert "ConnectionError" in body["checks"]["redis"]["error"]


def test_heartbeat_job_records_the_cluster(client: Client):
    from signalserver.tasks import heartbeat

    heartbeat()
    assert WorkerHeartbeat.objects.get().pid is not None
    assert client.get("/health").json()["checks"]["qcluster"]["ok"] is True


def test_heartbeat_is_scheduled_once_however_often_migrate_runs():
    from django.core.management import call_command
    from django_q.models import Schedule

    call_command("migrate", verbosity=0)
    call_command("migrate", verbosity=0)
    assert Schedule.objects.filter(name="heartbeat", func="signalserver.tasks.heartbeat").count() == 1


def test_ping_answers_get_and_head(client: Client):
    response = client.get("/api/ping")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "pong"
    assert dt.datetime.fromisoformat(body["timestamp_utc"]).tzinfo is not None
    assert body["required_vars_present"] is True
    assert client.head("/api/ping").status_code == 200


def test_responses_carry_a_request_id_and_honour_an_incoming_one(client: Client):
    assert len(client.get("/health/live")["X-Request-ID"]) == 32
    assert client.get("/health/live", HTTP_X_REQUEST_ID="abc-123")["X-Request-ID"] == "abc-123"
    assert client.get("/health/live", HTTP_X_REQUEST_ID="bad id\n")["X-Request-ID"] != "bad id\n"


def test_security_headers_come_from_django_middleware(client: Client):
    response = client.get("/health/live")
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_admin_login_page_is_served(client: Client):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert b"csrfmiddlewaretoken" in response.content


def test_health_command_exits_non_zero_and_names_the_failure():
    from django.core.management import call_command

    with pytest.raises(SystemExit) as exit_info:
        call_command("health")
    assert exit_info.value.code == 1
    WorkerHeartbeat.beat("qcluster@test", "test", 1)
    call_command("health")  # all green: no exit


# Mailboxes
WEDNESDAY_11H_PARIS = dt.datetime(2026, 11, 4, 10, 0, tzinfo=dt.UTC)


def test_a_mailbox_inside_its_hours_without_a_good_cycle_fails_health_naming_it(client, box, time_machine, settings):
    settings.HEALTH_MAILBOX_MAX_AGE_SECONDS = 300
    WorkerHeartbeat.beat("qcluster@test", "test", 1)
    time_machine.move_to(WEDNESDAY_11H_PARIS - dt.timedelta(minutes=10), tick=False)
    box.record_good_cycle()
    time_machine.move_to(WEDNESDAY_11H_PARIS - dt.timedelta(minutes=6), tick=False)
    WorkerHeartbeat.beat("qcluster@test", "test", 1)
    assert client.get("/health").status_code == 200  # 4 minutes: within the limit
    time_machine.move_to(WEDNESDAY_11H_PARIS, tick=False)
    WorkerHeartbeat.beat("qcluster@test", "test", 1)
    response = client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["mailbox:orders"]
    assert body["checks"]["mailbox:orders"]["error"] == "no good poll cycle for 600 s (limit 300 s)"


def test_a_mailbox_outside_its_hours_is_reported_not_failed(client, box, time_machine):
    time_machine.move_to(dt.datetime(2026, 11, 7, 10, 0, tzinfo=dt.UTC), tick=False)  # a Saturday
    WorkerHeartbeat.beat("qcluster@test", "test", 1)
    Mailbox.objects.filter(pk=box.pk).update(created=timezone.now() - dt.timedelta(days=30))
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["checks"]["mailbox:orders"] == {
        "ok": True,
        "state": "outside its active hours",
        "last_good_cycle": None,
        "age_seconds": None,
    }


def test_a_disabled_mailbox_never_fails_health(client, box, time_machine):
    time_machine.move_to(WEDNESDAY_11H_PARIS, tick=False)
    WorkerHeartbeat.beat("qcluster@test", "test", 1)
    Mailbox.objects.filter(pk=box.pk).update(enabled=False, created=timezone.now() - dt.timedelta(days=30))
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["checks"]["mailbox:orders"]["state"] == "disabled"


def test_a_mailbox_gets_the_allowed_age_after_its_hours_begin_and_after_it_is_added(client, box, time_machine):
    opening = dt.datetime(2026, 11, 4, 8, 0, tzinfo=dt.UTC)  # 09:00 in Paris, the default start
    time_machine.move_to(opening - dt.timedelta(hours=12), tick=False)
    box.record_good_cycle()
    Mailbox.objects.filter(pk=box.pk).update(created=timezone.now() - dt.timedelta(days=30))
    time_machine.move_to(opening + dt.timedelta(minutes=4), tick=False)
    WorkerHeartbeat.beat("qcluster@test", "test", 1)
    assert client.get("/health").status_code == 200  # the poller has 5 minutes to start
    time_machine.move_to(opening + dt.timedelta(minutes=6), tick=False)
    WorkerHeartbeat.beat("qcluster@test", "test", 1)
    assert client.get("/health").json()["failed"] == ["mailbox:orders"]
    fresh = Mailbox.objects.create(name="fresh", host="h", username="u", password="p")
    assert "mailbox:fresh" not in client.get("/health").json()["failed"]
    assert fresh.last_good_cycle is None
