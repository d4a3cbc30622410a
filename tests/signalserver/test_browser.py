"""The login and dashboard pages in a real browser: Debian's Chromium driven by Playwright.

Screenshots land in test-artifacts/ (TEST_ARTIFACTS_DIR) for a person to look at.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from delivery.models import Attempt, Delivery, Endpoint
from signalserver.models import MagicLink
from tests.delivery.conftest import make_email
from tests.signalserver.conftest import shoot

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def world(db, receiver, local_targets, schedule, box) -> dict[str, Any]:
    alice = User.objects.create_user("alice", password="correct horse battery staple", is_staff=True)
    endpoint = Endpoint.objects.create(name="app", url=receiver.url, is_default=True)
    for i in range(3):
        make_email(box, subject=f"Média Solution - Missions Recadrage - Lot {40 + i}", decision="delivered")
    email = make_email(box, subject="Média Solution - Missions Recadrage - Lot 99", decision="failed")
    delivery = Delivery.objects.create(
        email=email, endpoint=endpoint, status="failed", attempt_count=2, last_error="HTTP 503: busy"
    )
    Attempt.objects.create(delivery=delivery, outcome="failed", status_code=503, error="HTTP 503: busy")
    return {"alice": alice, "delivery": delivery, "receiver": receiver}


def test_an_operator_signs_in_by_magic_link_and_works_the_dashboard(site, page, world):
    _, token = MagicLink.issue(world["alice"])
    page.goto(f"{site}/login/magic/{token}")
    page.get_by_role("heading", name="Sign in as alice?").wait_for()
    shoot(page, "magic-link-confirm")
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    assert page.url == f"{site}/"
    shoot(page, "dashboard")

    # Resend the failed delivery: the sender job delivers it to the receiver.
    assert "HTTP 503: busy" in page.locator("#failed").inner_text()  # its last error, in words
    page.locator("#failed").get_by_role("button", name="Resend").click()
    page.get_by_text("queued again").wait_for()
    delivery = world["delivery"]
    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert [r.headers["webhook-id"] for r in world["receiver"].received] == [delivery.webhook_id]
    assert "No failed delivery." in page.locator("#failed").inner_text()

    # Generate a long-lived link, copy it, and sign in with it in another browser.
    page.locator("select[name=kind]").select_option("permanent")
    page.get_by_role("button", name="Generate magic link").click()
    page.get_by_role("heading", name="New long-lived sign-in link").wait_for()
    url = page.locator("#magic-link-url").input_value()
    assert url.startswith(f"{site}/login/magic/")
    page.get_by_role("button", name="Copy").click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == url
    shoot(page, "magic-link-created")
    other = page.context.browser.new_context()
    second = other.new_page()
    second.goto(url)
    second.get_by_role("button", name="Continue").click()
    second.get_by_role("heading", name="Dashboard").wait_for()
    other.close()


def test_a_used_link_shows_a_clear_page(site, page, world):
    _, token = MagicLink.issue(world["alice"])
    MagicLink.redeem(token)
    page.goto(f"{site}/login/magic/{token}")
    assert "already used" in page.get_by_role("alert").inner_text()
    shoot(page, "magic-link-refused")


def test_the_login_page_says_when_attempts_are_throttled(site, page, world):
    page.goto(f"{site}/")
    assert page.url.startswith(f"{site}/login?next=/")
    for _ in range(5):
        page.get_by_label("Username").fill("alice")
        page.get_by_label("Password").fill("wrong password")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("alert").wait_for()
    assert "correct username and password" in page.get_by_role("alert").inner_text()
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("correct horse battery staple")
    page.get_by_role("button", name="Sign in").click()
    assert "Too many failed sign-in attempts. Try again in 5 minutes." in page.get_by_role("alert").inner_text()
    shoot(page, "login-throttled")


def test_the_dashboard_fits_a_phone(site, chromium, world):
    context = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone = context.new_page()
    phone.goto(f"{site}/login")
    phone.get_by_label("Username").fill("alice")
    phone.get_by_label("Password").fill("correct horse battery staple")
    shoot(phone, "login-phone")
    phone.get_by_role("button", name="Sign in").click()
    phone.get_by_role("heading", name="Dashboard").wait_for()
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    shoot(phone, "dashboard-phone")
    context.close()
