"""An operator in a real browser: what is pending and why, what to do about it, and the admin
pages they fill in. Debian's Chromium driven by Playwright, as in test_browser.py.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from delivery.models import Attempt, Delivery, Endpoint, SendingSchedule
from delivery.outbox import plan
from mail.models import Email, Mailbox, PollerLease
from mail.pipeline import Fetched, record_batch
from tests.delivery.conftest import make_email
from tests.delivery.receiver import Reply
from tests.mail.corpus import eml, message
from tests.signalserver.conftest import shoot

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"


@pytest.fixture
def alice(db) -> User:
    return User.objects.create_superuser("alice", "alice@example.com", PASSWORD)


def sign_in(page: Any, site: str, path: str = "/") -> None:
    page.goto(f"{site}/login?next={path}")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{site}{path}")


def chip(page: Any, name: str) -> str:
    return str(page.locator(".summary a.pill", has_text=name).inner_text())


def test_a_retrying_delivery_shows_its_attempts_error_and_next_try_and_goes_on_send_now(
    site, page, alice, box, endpoint, schedule, receiver
):
    receiver.then(Reply(503, {"error": "receiver is restarting"}))
    [delivery] = plan(make_email(box, subject="Média Solution - Missions Recadrage - Lot 77"))  # first try: 503
    delivery.refresh_from_db()
    assert delivery.status == "pending" and delivery.attempt_count == 1
    sign_in(page, site)
    assert chip(page, "retrying") == "retrying 1"
    retrying = page.locator("#retrying")
    row = retrying.get_by_role("row", name="Lot 77")
    assert "app" in row.inner_text() and "HTTP 503" in row.inner_text()
    assert row.get_by_role("cell").nth(3).inner_text() == "1"  # attempts
    next_try = timezone.localtime(delivery.next_attempt_at)
    assert next_try.strftime("%d/%m %H:%M:%S") in row.inner_text()
    assert "retrying" in page.locator("#emails").get_by_role("row", name="Lot 77").inner_text()
    shoot(page, "dashboard-retrying")
    row.get_by_role("button", name="Send now").click()  # the receiver is back (answers 200)
    page.get_by_text("is being sent now").wait_for()
    assert chip(page, "retrying") == "retrying 0"
    assert "No delivery is waiting for a retry." in retrying.inner_text()
    assert Delivery.objects.get().status == "delivered" and len(receiver.received) == 2


def test_resend_is_in_plain_view_and_the_test_webhook_answer_is_under_its_button(
    site, page, alice, box, endpoint, schedule, receiver
):
    email = make_email(box, subject="Média Solution - Missions Recadrage - Lot 99", decision="failed")
    failed = Delivery.objects.create(email=email, endpoint=endpoint, status="failed", attempt_count=6, reason="Failed")
    Attempt.objects.create(delivery=failed, outcome="failed", status_code=500, error="HTTP 500: boom")
    sign_in(page, site)
    resend = page.locator("#failed").get_by_role("button", name="Resend")
    assert resend.is_visible()  # no row to open first
    page.get_by_role("button", name="Send test webhook").click()
    page.get_by_text("its answer appears under the button").wait_for()
    answer = page.locator("#tools ul[aria-label='Test results']")
    assert answer.is_visible() and "app: OK: HTTP 200" in answer.inner_text()
    resend.click()
    page.get_by_text("queued again").wait_for()
    assert Delivery.objects.get(pk=failed.pk).status == "delivered"


def test_an_order_skipped_for_want_of_a_default_endpoint_is_explained_fixed_and_reprocessed(
    site, page, alice, box, receiver, local_targets, schedule
):
    Endpoint.objects.create(name="app", url=receiver.url, is_default=False)
    Endpoint.objects.update(is_default=False)  # the first one became the default: the operator unticked it
    raws = [message(f"Commande {n}", f"https://fromsmash.com/Order{n:04d}", msgid=f"<o{n}@x>") for n in range(2)]
    first, second = record_batch(box, 1, [Fetched(n + 1, raw) for n, raw in enumerate(raws)])
    sign_in(page, site)
    assert "No endpoint is a default one" in page.get_by_role("alert").inner_text()
    row = page.locator("#emails").get_by_role("row", name="Commande 0")
    assert "skipped_no_endpoint" in row.inner_text()
    assert "No default endpoint, and no routing rule matched this email" in row.inner_text()
    shoot(page, "dashboard-skipped-no-default")

    page.goto(f"{site}/admin/delivery/endpoint/")
    assert "No endpoint is a default one" in page.locator(".messagelist").inner_text()
    page.get_by_role("link", name="app").click()
    page.get_by_label("Is default").check()
    page.get_by_role("button", name="Save", exact=True).click()

    page.goto(f"{site}/")
    page.get_by_role("checkbox", name="Select Commande 0").check()
    page.get_by_role("checkbox", name="Select Commande 1").check()
    page.get_by_role("button", name="Reprocess selected").click()
    page.get_by_text("Reprocessing of 2 email(s) queued").wait_for()
    assert set(Email.objects.values_list("decision", flat=True)) == {"delivered"}
    assert "delivered" in page.locator("#emails").get_by_role("row", name="Commande 0").inner_text()
    page.get_by_role("checkbox", name="Select Commande 0").check()
    page.get_by_role("button", name="Reprocess selected").click()  # again: nothing goes twice
    page.get_by_text("Reprocessing of 1 email(s) queued").wait_for()
    assert len(receiver.received) == 2 and Delivery.objects.count() == 2
    assert first.pk != second.pk


def test_the_poller_column_tells_failing_from_polling_and_a_fixed_error_is_history(site, page, alice, box):
    PollerLease.objects.create(
        name=box.lease_name, holder="abc pid=42 host=worker-1", expires_at=timezone.now() + dt.timedelta(minutes=1)
    )
    box.record_error("The server refused the login of u: the username or password is wrong.")
    sign_in(page, site)
    row = page.locator("#mailboxes").get_by_role("row", name="orders")
    poller = row.get_by_role("cell").nth(1)
    assert "failing" in poller.inner_text() and "polling" not in poller.inner_text()
    assert poller.locator(".bad").is_visible()
    assert row.locator(".error-text").inner_text().startswith("The server refused the login of u")
    shoot(page, "dashboard-mailbox-failing")
    box.record_good_cycle()  # the password was fixed: the next cycle worked
    page.reload()
    row = page.locator("#mailboxes").get_by_role("row", name="orders")
    assert "polling" in row.get_by_role("cell").nth(1).inner_text()
    assert row.locator(".error-text").count() == 0
    assert "Resolved: The server refused the login" in row.inner_text()


def test_check_now_shows_its_result_next_to_the_button(site, page, alice, mailbox, imap):
    imap.append(eml("recadrage_dropbox_folder.eml"))
    sign_in(page, site)
    row = page.locator("#mailboxes").get_by_role("row", name="orders")
    row.get_by_role("button", name="Check now").click()
    page.get_by_text("the result appears next to its button").wait_for()
    result = page.locator("#mailboxes").get_by_role("row", name="orders").locator(".check-result")
    assert "1 new email(s)." in result.inner_text()


def test_the_mailbox_form_keeps_the_typed_password_shows_help_in_full_and_days_as_checkboxes(site, page, alice):
    sign_in(page, site, "/admin/mail/mailbox/add/")
    assert "Handle each “Lot 12”-style subject group once" in page.locator("body").inner_text()
    days = page.locator("#id_active_days")
    assert [days.get_by_label(d).is_checked() for d in ("Mon", "Fri", "Sat", "Sun")] == [True, True, False, False]
    page.get_by_label("Name:", exact=True).fill("orders")
    page.get_by_label("Host:").fill("imap.example.com")
    page.get_by_label("Port:").fill("70000")  # a mistake
    page.get_by_label("Username:").fill("orders@example.com")
    page.get_by_label("Password:").fill("s3cret-pass")
    days.get_by_label("Sat").check()
    page.get_by_role("button", name="Save", exact=True).click()
    page.locator(".errornote").wait_for()
    assert page.get_by_label("Password:").input_value() == "s3cret-pass"  # not to be typed again
    assert page.locator("#id_active_days").get_by_label("Sat").is_checked()
    shoot(page, "admin-mailbox-error")
    page.get_by_label("Port:").fill("993")
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("was added successfully").wait_for()
    box = Mailbox.objects.get()
    assert (box.password, box.active_days, box.seen_policy) == ("s3cret-pass", "0,1,2,3,4,5", "orders")
    page.goto(f"{site}/admin/mail/mailbox/{box.pk}/change/")
    assert page.get_by_label("Password:").input_value() == ""  # the stored one is never shown


def test_absence_days_use_the_same_weekday_checkboxes(site, page, alice):
    sign_in(page, site, "/admin/")
    page.goto(f"{site}/admin/delivery/sendingschedule/{SendingSchedule.load().pk}/change/")
    days = page.locator("#id_absence_days")
    days.get_by_label("Sat").check()
    days.get_by_label("Sun").check()
    page.get_by_role("button", name="Save", exact=True).click()
    page.get_by_text("was changed successfully").wait_for()
    assert SendingSchedule.load().absence_day_list() == ["saturday", "sunday"]


def test_admin_refusals_say_what_to_do(site, page, alice, settings):
    settings.DEBUG = True  # development: the hint about local receivers is shown
    sign_in(page, site, "/admin/delivery/endpoint/add/")
    page.get_by_label("Name:", exact=True).fill("local")
    page.get_by_label("Url:", exact=True).fill("http://127.0.0.1:9000/hook")
    page.get_by_role("button", name="Save", exact=True).click()
    refusal = page.locator(".errorlist").first.inner_text()
    assert "Only https URLs are allowed (http given)" in refusal
    assert "set WEBHOOK_ALLOW_PRIVATE_TARGETS=true" in refusal

    Endpoint.objects.create(name="app", url="https://receiver.example/hook")
    page.goto(f"{site}/admin/delivery/routingrule/add/")
    page.get_by_label("Name:", exact=True).fill("lots")
    page.get_by_label("Endpoint:").select_option(label="app")
    page.locator("select[name='conditions-0-field']").select_option("subject")
    page.locator("select[name='conditions-0-operator']").select_option("regex")
    page.locator("input[name='conditions-0-value']").fill(r"(?<=Lot )\d+")
    page.get_by_role("button", name="Save", exact=True).click()
    refusal = page.locator(".errorlist").first.inner_text()
    assert "has no look-behind such as (?<=…) or (?<!…). Rewrite the pattern without it" in refusal
    shoot(page, "admin-regex-refused")
