"""API tokens: shown once, stored hashed, limited to their scopes, revocable, optionally expiring."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from signalserver.models import ApiToken, hash_token

pytestmark = pytest.mark.django_db


def test_a_token_is_stored_as_a_hash_with_a_recognisable_prefix():
    row, token = ApiToken.issue("ci", ["test_r2"])
    assert token.startswith("sst_") and row.prefix == token[:12]
    assert row.token_hash == hash_token(token) and token not in row.token_hash


def test_it_authenticates_only_for_its_scopes_and_records_the_use():
    row, token = ApiToken.issue("ci", ["test_r2"])
    assert ApiToken.authenticate(token, "deploy") is None
    assert ApiToken.authenticate(token, "test_r2") == row
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_revoked_and_expired_tokens_are_refused():
    revoked, revoked_token = ApiToken.issue("old", ["deploy"])
    revoked.revoked_at = timezone.now()
    revoked.save()
    expiring, expiring_token = ApiToken.issue("temp", ["deploy"])
    expiring.expires_at = timezone.now() - dt.timedelta(seconds=1)
    expiring.save()
    assert ApiToken.authenticate(revoked_token, "deploy") is None
    assert ApiToken.authenticate(expiring_token, "deploy") is None


def test_the_admin_creates_a_token_shows_it_once_and_revokes_it():
    admin = User.objects.create_superuser("root", password="pw")
    browser = Client()
    browser.force_login(admin)
    response = browser.post(
        "/admin/signalserver/apitoken/add/", {"name": "github", "scope_choices": ["deploy"]}, follow=True
    )
    [message] = [str(m) for m in response.context["messages"] if "copy it now" in str(m)]
    token = message.split(": ", 1)[1].split(" ")[0]
    row = ApiToken.objects.get(name="github")
    assert row.scope_list() == ["deploy"] and row.created_by == "root"
    assert ApiToken.authenticate(token, "deploy") == row
    assert token not in browser.get(f"/admin/signalserver/apitoken/{row.pk}/change/").content.decode()
    browser.post("/admin/signalserver/apitoken/", {"action": "revoke_tokens", "_selected_action": [row.pk]})
    assert ApiToken.authenticate(token, "deploy") is None
