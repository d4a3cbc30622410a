"""Magic links: rows holding a hash, a confirm page on GET, one sign-in per one-time link."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import close_old_connections
from django.test import Client
from django.utils import timezone

from signalserver.models import LinkRefused, MagicLink, hash_token
from tests.conftest import run_together

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(db) -> User:
    return User.objects.create_user("alice", password="correct horse battery staple", is_staff=True)


def url(token: str) -> str:
    return f"/login/magic/{token}"


def lifetime(link: MagicLink) -> float:
    assert link.expires_at is not None
    return (link.expires_at - link.created).total_seconds()


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_it_stores_only_a_hash_of_the_token(alice):
    link, token = MagicLink.issue(alice)
    assert link.token_hash == hash_token(token) and token not in link.token_hash
    assert not MagicLink.objects.filter(token_hash=token).exists()
    assert len(token) == 43


def test_a_one_time_link_expires_after_the_default_ttl(alice, settings):
    settings.MAGIC_LINK_TTL_SECONDS = 900
    link, _ = MagicLink.issue(alice)
    assert link.one_time
    assert lifetime(link) == 900


def test_a_ttl_below_a_minute_is_raised_to_a_minute(alice):
    link, _ = MagicLink.issue(alice, ttl_seconds=5)
    assert lifetime(link) == 60


def test_opening_a_link_shows_a_confirm_page_and_changes_nothing(client, alice):
    link, token = MagicLink.issue(alice)
    for _ in range(3):  # a mail scanner may open it several times
        response = client.get(url(token))
        assert response.status_code == 200
        assert b"Sign in as alice?" in response.content
    link.refresh_from_db()
    assert (link.used_at, link.use_count) == (None, 0)
    assert not signed_in(client)


def test_confirming_signs_in_and_uses_up_a_one_time_link(client, alice):
    link, token = MagicLink.issue(alice)
    response = client.post(url(token))
    assert response.status_code == 302 and response["Location"] == "/"
    assert signed_in(client) and client.session["_auth_user_id"] == str(alice.pk)
    link.refresh_from_db()
    assert link.used_at is not None and link.use_count == 1
    assert client.get("/").status_code == 200


def test_a_used_one_time_link_is_refused_with_a_clear_page(client, alice):
    _, token = MagicLink.issue(alice)
    client.post(url(token))
    other = Client()
    for response in (other.get(url(token)), other.post(url(token))):
        assert response.status_code == 410
        assert b"already used" in response.content
    assert not signed_in(other)


def test_an_expired_link_is_refused(client, alice, time_machine):
    _, token = MagicLink.issue(alice, ttl_seconds=60)
    time_machine.move_to(timezone.now() + dt.timedelta(seconds=61))
    response = client.post(url(token))
    assert response.status_code == 410 and b"expired" in response.content
    assert not signed_in(client)


def test_a_revoked_link_is_refused(client, alice):
    link, token = MagicLink.issue(alice, permanent=True)
    assert link.revoke()
    response = client.get(url(token))
    assert response.status_code == 410 and b"revoked" in response.content


@pytest.mark.parametrize("token", ["short", "x" * 44, "a" * 42 + "!", "%00" * 20])
def test_a_malformed_link_is_refused(client, alice, token):
    response = client.get(url(token))
    assert response.status_code == 400 and b"incomplete or altered" in response.content


def test_an_unknown_link_is_refused(client, alice):
    response = client.post(url("A" * 43))
    assert response.status_code == 404 and b"not known" in response.content


def test_a_link_of_a_disabled_user_is_refused(client, alice):
    _, token = MagicLink.issue(alice)
    alice.is_active = False
    alice.save()
    response = client.post(url(token))
    assert response.status_code == 410 and b"disabled" in response.content
    assert not signed_in(client)


def test_a_long_lived_link_signs_in_again_and_again_until_revoked(alice):
    link, token = MagicLink.issue(alice, permanent=True)
    assert link.expires_at is None and not link.one_time
    for _ in range(3):
        browser = Client()
        assert browser.post(url(token)).status_code == 302 and signed_in(browser)
    link.refresh_from_db()
    assert link.use_count == 3
    MagicLink.revoke_all(alice)
    assert Client().post(url(token)).status_code == 410


def test_next_is_followed_only_to_paths_of_this_site(alice):
    cases = {
        "/admin/": "/admin/",
        "/?decision=failed": "/?decision=failed",
        "https://evil.example/": "/",
        "//evil.example/x": "/",
        "/\\evil.example": "/",
        "javascript:alert(1)": "/",
    }
    for next_url, expected in cases.items():
        _, token = MagicLink.issue(alice)
        response = Client().post(url(token), {"next": next_url})
        assert response["Location"] == expected, next_url


def test_the_confirm_page_carries_next_to_the_form(client, alice):
    _, token = MagicLink.issue(alice)
    response = client.get(url(token) + "?next=/admin/")
    assert b'name="next" value="/admin/"' in response.content


def redeem(token: str) -> str:
    try:
        MagicLink.redeem(token)
    except LinkRefused as refusal:
        return refusal.state
    return "signed in"


@pytest.mark.django_db(transaction=True)
def test_of_simultaneous_redemptions_of_a_one_time_link_exactly_one_wins():
    alice = User.objects.create_user("alice")
    for _ in range(5):
        _, token = MagicLink.issue(alice)
        assert sorted(run_together(functools.partial(redeem, token), 6)) == ["consumed"] * 5 + ["signed in"]
        close_old_connections()


def test_refusals_and_sign_ins_are_logged_without_the_token(client, alice, caplog):
    caplog.set_level(logging.INFO)
    _, token = MagicLink.issue(alice)
    client.post(url(token))
    client.post(url(token))
    client.get(url("B" * 43))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "MAGIC_LINK: alice signed in with one-time link" in text
    assert "MAGIC_LINK: refused (consumed)" in text and "MAGIC_LINK: refused (unknown)" in text
    assert token not in text and "B" * 43 not in text


def test_the_command_prints_an_absolute_link_that_works(alice, settings):
    settings.PUBLIC_BASE_URL = "https://signal.example.com"
    out, err = StringIO(), StringIO()
    call_command("magic_link", "alice", "--ttl", "120", stdout=out, stderr=err)
    printed = out.getvalue().strip()
    assert printed.startswith("https://signal.example.com/login/magic/")
    assert "valid until" in err.getvalue()
    link = MagicLink.objects.get()
    assert link.one_time and lifetime(link) == 120
    assert Client().post(printed.removeprefix("https://signal.example.com")).status_code == 302


def test_the_command_makes_long_lived_links_and_names_bad_input(alice):
    call_command("magic_link", "alice", "--permanent", stdout=StringIO(), stderr=StringIO())
    assert MagicLink.objects.get().expires_at is None
    with pytest.raises(CommandError, match="No user named 'bob'"):
        call_command("magic_link", "bob", stdout=StringIO())
    with pytest.raises(CommandError, match="at least 60"):
        call_command("magic_link", "alice", "--ttl", "30", stdout=StringIO())


def test_the_admin_lists_revokes_and_creates_links(alice):
    admin = User.objects.create_superuser("root", password="pw")
    browser = Client()
    browser.force_login(admin)
    one, _ = MagicLink.issue(alice)
    two, _ = MagicLink.issue(alice, permanent=True)
    assert browser.get("/admin/signalserver/magiclink/").status_code == 200
    browser.post("/admin/signalserver/magiclink/", {"action": "revoke", "_selected_action": [one.pk]})
    one.refresh_from_db()
    two.refresh_from_db()
    assert one.revoked_at is not None and two.revoked_at is None
    browser.post("/admin/signalserver/magiclink/", {"action": "revoke_all_for_user", "_selected_action": [one.pk]})
    two.refresh_from_db()
    assert two.revoked_at is not None
    response = browser.post(
        "/admin/signalserver/magiclink/add/", {"user": alice.pk, "permanent": "on", "ttl_seconds": ""}, follow=True
    )
    created = MagicLink.objects.order_by("-pk").first()
    assert created.created_by == "admin:root" and not created.one_time
    shown = [str(m) for m in response.context["messages"]]
    assert any("/login/magic/" in m for m in shown)
