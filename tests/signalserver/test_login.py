"""Password login: throttled per address and per username, secure cookies, logout by POST."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from signalserver.logs import JsonFormatter, redact
from signalserver.models import LoginFailure

pytestmark = pytest.mark.django_db
PASSWORD = "correct horse battery staple"


@pytest.fixture
def alice(db) -> User:
    return User.objects.create_user("alice", password=PASSWORD, is_staff=True)


def attempt(username: str, password: str, ip: str = "203.0.113.7", client: Client | None = None):
    client = client or Client()
    return client.post("/login", {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_the_dashboard_sends_strangers_to_the_login_page(client):
    response = client.get("/?decision=failed")
    assert response.status_code == 302
    assert response["Location"] == "/login?next=/%3Fdecision%3Dfailed"


def test_a_right_password_signs_in_and_follows_next(alice):
    client = Client()
    response = client.post("/login", {"username": "alice", "password": PASSWORD, "next": "/admin/"})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/").status_code == 200


def test_next_never_leaves_the_site(alice):
    response = Client().post("/login", {"username": "alice", "password": PASSWORD, "next": "https://evil.example/"})
    assert response["Location"] == "/"


def test_a_wrong_password_is_refused_and_counted(alice):
    response = attempt("alice", "nope")
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    assert LoginFailure.objects.filter(username="alice", ip="203.0.113.7").count() == 1


def test_five_failures_for_a_username_block_it_from_every_address(alice):
    for i in range(5):
        attempt("alice", "wrong", ip=f"198.51.100.{i}")
    response = attempt("alice", PASSWORD, ip="192.0.2.50")
    assert response.status_code == 429
    assert b"Too many failed sign-in attempts. Try again in 5 minutes." in response.content
    assert "_auth_user_id" not in response.client.session


def test_five_failures_from_an_address_block_it_for_every_username(alice):
    for name in ("bob", "carol", "dave", "erin", "frank"):
        attempt(name, "wrong", ip="203.0.113.9")
    assert attempt("alice", PASSWORD, ip="203.0.113.9").status_code == 429
    assert attempt("alice", PASSWORD, ip="203.0.113.10").status_code == 302


def test_the_block_lifts_when_the_failures_leave_the_window(alice, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    for _ in range(5):
        attempt("alice", "wrong")
    assert attempt("alice", PASSWORD).status_code == 429
    time_machine.move_to(timezone.now() + dt.timedelta(seconds=301), tick=False)
    assert attempt("alice", PASSWORD).status_code == 302


def test_behind_a_proxy_the_address_is_the_last_forwarded_hop(alice, settings):
    settings.TRUST_X_FORWARDED_FOR = True
    Client().post(
        "/login", {"username": "x", "password": "y"}, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="1.2.3.4, 5.6.7.8"
    )
    assert LoginFailure.objects.get().ip == "5.6.7.8"


def test_the_admin_login_is_the_same_throttled_form(alice):
    for _ in range(5):
        Client().post("/admin/login/", {"username": "alice", "password": "wrong"}, REMOTE_ADDR="203.0.113.7")
    response = Client().post("/admin/login/?next=/admin/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 429


def test_the_session_cookie_is_secure_http_only_and_lax(alice):
    response = attempt("alice", PASSWORD)
    cookie = response.cookies["sessionid"]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Lax"


def test_logout_is_a_post(alice):
    client = Client()
    client.force_login(alice)
    assert client.get("/logout").status_code == 405
    assert client.post("/logout")["Location"] == "/login"
    assert client.get("/").status_code == 302


def test_failed_logins_are_logged_without_the_password(alice, caplog):
    caplog.set_level(logging.INFO)
    attempt("alice", "hunter2-secret")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "LOGIN: failed password login username='alice' ip=203.0.113.7" in text
    assert "hunter2-secret" not in text


def test_log_lines_and_access_logs_never_show_a_sign_in_token():
    token = "Q" * 43
    assert redact(f"Gone: /login/magic/{token}") == "Gone: /login/magic/[redacted]"
    record = logging.makeLogRecord({"msg": "x", "request": f"<WSGIRequest: POST '/login/magic/{token}'>"})
    assert token not in JsonFormatter().format(record)
