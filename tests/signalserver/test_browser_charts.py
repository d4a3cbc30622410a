"""The dashboard's charts in a real browser (Debian's Chromium), with screenshots in test-artifacts/."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from delivery.models import Attempt, Delivery, Endpoint
from tests.delivery.conftest import make_email
from tests.signalserver.conftest import ARTIFACTS, shoot

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def day(db, box, local_targets) -> None:
    """A day of mail: every hour some delivered orders, a few skipped, one failure, one held."""
    User.objects.create_user("alice", password="correct horse battery staple", is_staff=True)
    app = Endpoint.objects.create(name="app", url="https://app.example/hook", is_default=True)
    archive = Endpoint.objects.create(name="archive", url="https://archive.example/hook")
    now = timezone.now()
    for hour in range(24):
        when = now - dt.timedelta(hours=hour, minutes=5)
        for n in range(1 + hour % 4):
            email = make_email(box, decision="delivered", received_at=when)
            delivered = Delivery.objects.create(
                email=email,
                endpoint=app if n % 3 else archive,
                status="delivered",
                created=when,
                delivered_at=when + dt.timedelta(seconds=0.2 * (n + 1) * (1 + hour % 5)),
            )
            Attempt.objects.create(delivery=delivered, outcome="delivered", started=when)
        if hour % 3 == 0:
            make_email(box, decision="skipped_reply", received_at=when)
    failed = Delivery.objects.create(email=make_email(box, decision="failed"), endpoint=archive, status="failed")
    Attempt.objects.create(delivery=failed, outcome="failed", status_code=503)
    Delivery.objects.create(email=make_email(box, decision="held"), endpoint=app, status="held")


def sign_in(tab, url: str) -> None:
    tab.goto(f"{url}/login")
    tab.get_by_label("Username").fill("alice")
    tab.get_by_label("Password").fill("correct horse battery staple")
    tab.get_by_role("button", name="Sign in").click()
    tab.get_by_role("heading", name="Dashboard").wait_for()


def test_the_charts_draw_the_last_day(site, page, day):
    sign_in(page, site)
    charts = page.locator("#charts")
    charts.get_by_text("Emails per hour").wait_for()
    assert page.locator("#chart-emails rect.bar").count() >= 24
    assert page.locator("#chart-deliveries rect.bar.failed").count() == 1
    assert page.locator("#chart-latency polyline.p95").count() == 1
    assert "archive" in page.locator("#chart-endpoints").inner_text()
    box = page.locator("#chart-emails svg").bounding_box()
    assert box and box["width"] > 250 and box["height"] > 60  # the stylesheet was served and applied
    assert page.locator("#chart-emails rect.bar").first.evaluate("e => getComputedStyle(e).fill") != "rgb(0, 0, 0)"
    charts.screenshot(path=str(ARTIFACTS / "dashboard-charts.png"))
    shoot(page, "dashboard-with-charts")


def test_the_charts_fit_a_phone(site, chromium, day):
    context = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone = context.new_page()
    sign_in(phone, site)
    phone.locator("#charts").get_by_text("Endpoint success rate").wait_for()
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    phone.locator("#charts").screenshot(path=str(ARTIFACTS / "dashboard-charts-phone.png"))
    context.close()
