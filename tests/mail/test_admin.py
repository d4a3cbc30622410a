"""The admin: mailbox passwords are write-only; emails are read-only with their raw message."""

from __future__ import annotations

import pytest
from django.db import connection

from mail.models import Email, Mailbox
from mail.pipeline import Fetched, record_batch
from tests.mail.corpus import eml

pytestmark = pytest.mark.django_db

FORM = {
    "name": "orders",
    "enabled": "on",
    "host": "imap.example.com",
    "port": "993",
    "use_ssl": "on",
    "username": "orders@example.com",
    "folder": "INBOX",
    "allowed_senders": "",
    "subject_group_dedup": "on",
    "timezone": "Europe/Paris",
    "active_days": ["0", "1", "2", "3", "4"],
    "active_start": "09:00",
    "active_end": "23:00",
    "mode": "idle",
    "poll_interval_seconds": "30",
    "inactive_interval_seconds": "600",
    "seen_policy": "orders",
    "flag_keyword": "",
}


def test_a_mailbox_password_is_stored_encrypted_and_never_shown_back(admin_client):
    response = admin_client.post("/admin/mail/mailbox/add/", {**FORM, "password": "s3cret-pass"})
    assert response.status_code == 302, response.content[:2000]
    box = Mailbox.objects.get()
    assert box.password == "s3cret-pass"
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM mail_mailbox")
        assert "s3cret-pass" not in cursor.fetchone()[0]
    page = admin_client.get(f"/admin/mail/mailbox/{box.pk}/change/")
    assert b"s3cret-pass" not in page.content


def test_editing_without_a_password_keeps_the_current_one(admin_client):
    admin_client.post("/admin/mail/mailbox/add/", {**FORM, "password": "s3cret-pass"})
    box = Mailbox.objects.get()
    response = admin_client.post(f"/admin/mail/mailbox/{box.pk}/change/", {**FORM, "host": "imap2.example.com"})
    assert response.status_code == 302
    box.refresh_from_db()
    assert (box.host, box.password) == ("imap2.example.com", "s3cret-pass")


def test_a_new_mailbox_needs_a_password(admin_client):
    response = admin_client.post("/admin/mail/mailbox/add/", FORM)
    assert response.status_code == 200 and b"A password is required" in response.content


def test_invalid_schedule_values_are_refused_with_a_message(admin_client):
    bad = {**FORM, "password": "x", "timezone": "Mars/Olympus", "active_days": []}
    content = admin_client.post("/admin/mail/mailbox/add/", bad).content
    assert b"is not a known time zone" in content and b"Choose at least one day." in content


def test_emails_are_listed_filtered_searched_and_downloadable(admin_client):
    box = Mailbox.objects.create(name="orders", host="h", username="u", password="p")
    [email] = record_batch(box, 1, [Fetched(1, eml("recadrage_dropbox_folder.eml"))])
    listing = admin_client.get("/admin/mail/email/?decision__exact=" + email.decision + "&q=Recadrage")
    assert b"Lot 42" in listing.content
    assert admin_client.get("/admin/mail/email/add/").status_code == 403
    raw = admin_client.get(f"/admin/mail/email/{email.pk}/raw/")
    assert raw["Content-Type"] == "message/rfc822"
    assert b"".join(raw) == eml("recadrage_dropbox_folder.eml")
    assert Email.objects.count() == 1
