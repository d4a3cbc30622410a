"""The dashboard: what every mailbox, email and delivery is doing, buttons that queue jobs, constant queries."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from standardwebhooks import Webhook

from delivery.models import Attempt, Delivery, Endpoint, StoredLink
from deploys.models import Deployment
from mail.models import Email, Mailbox, PollerLease
from signalserver.models import MagicLink
from tests.delivery.conftest import make_email
from tests.delivery.receiver import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(db) -> User:
    return User.objects.create_user("alice", password="pw", is_staff=True)


@pytest.fixture
def browser(operator) -> Client:
    client = Client()
    client.force_login(operator)
    return client


def failed_delivery(email: Email, endpoint: Endpoint, attempts: int = 2) -> Delivery:
    delivery = Delivery.objects.create(
        email=email,
        endpoint=endpoint,
        status="failed",
        attempt_count=attempts,
        reason=f"Failed after {attempts} attempt(s)",
        last_error=f"HTTP {500 + attempts - 1}",  # as the sender records it
    )
    for i in range(attempts):
        Attempt.objects.create(delivery=delivery, outcome="failed", status_code=500 + i, error=f"HTTP {500 + i}")
    return delivery


def test_it_shows_the_poller_state_of_each_mailbox(browser, box, time_machine):
    time_machine.move_to(dt.datetime(2026, 11, 7, 10, 0, tzinfo=dt.UTC), tick=False)  # a Saturday
    box.record_error("IMAP: timeout after 30 s")
    box.record_good_cycle()
    PollerLease.objects.create(
        name=box.lease_name, holder="abc pid=42 host=web-1", expires_at=timezone.now() + dt.timedelta(minutes=1)
    )
    page = browser.get("/").content.decode()
    assert "orders" in page and "abc pid=42 host=web-1" in page
    assert "IMAP: timeout after 30 s" in page
    assert "next active Mon 09/11 09:00" in page


def test_it_lists_recent_emails_with_decision_and_reason(browser, box):
    make_email(
        box,
        subject="Média Solution - Missions Recadrage - Lot 7",
        decision="skipped_duplicate_group",
        reason="Subject group lot 7 was already handled.",
    )
    page = browser.get("/").content.decode()
    assert "Lot 7" in page and "skipped_duplicate_group" in page and "lot 7 was already handled" in page


def test_it_filters_emails_by_decision_detector_mailbox_and_text(browser, box):
    other = Mailbox.objects.create(name="support", host="imap.example", username="s", password="p")
    make_email(box, subject="Lot 1 recadrage", decision="delivered", detector="recadrage")
    make_email(box, subject="Désabonnement journée", decision="held", detector="desabonnement_journee_tarifs")
    make_email(other, subject="Hello", decision="skipped_sender", detector="", sender="x@else.example")

    def subjects(query: str) -> set[str]:
        response = browser.get("/?" + query)
        return {e.subject for e in response.context["emails"]}

    assert subjects("decision=held") == {"Désabonnement journée"}
    assert subjects("detector=recadrage") == {"Lot 1 recadrage"}
    assert subjects("detector=none") == {"Hello"}
    assert subjects("mailbox=support") == {"Hello"}
    assert subjects("q=else.example") == {"Hello"}
    assert subjects("q=lot+1") == {"Lot 1 recadrage"}
    assert len(subjects("decision=bogus")) == 3  # an invalid filter shows everything, it doesn't fail


def test_emails_are_paginated_keeping_the_filters(browser, box):
    Email.objects.bulk_create(
        [
            Email(mailbox=box, identity=f"<{i}@t>", email_id="x", subject=f"S{i}", decision="delivered")
            for i in range(60)
        ]
    )
    first = browser.get("/?decision=delivered")
    assert len(first.context["emails"]) == 25 and first.context["emails"].paginator.num_pages == 3
    assert "?decision=delivered&amp;page=2" in first.content.decode()
    last = browser.get("/?decision=delivered&page=3")
    assert len(last.context["emails"]) == 10


def test_it_shows_held_deliveries_with_their_release_time(browser, box, endpoint):
    release = dt.datetime(2026, 11, 9, 8, 0, tzinfo=dt.UTC)
    email = make_email(box, subject="Urgent DESABO", decision="held")
    Delivery.objects.create(
        email=email, endpoint=endpoint, status="held", next_attempt_at=release, reason="Outside the window."
    )
    page = browser.get("/").content.decode()
    section = page[page.index('id="held"') : page.index('id="failed"')]
    assert "Urgent DESABO" in section and "Mon 09/11 09:00" in section and "Outside the window." in section


def grant(user: User, *codenames: str) -> None:
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))


def test_it_shows_failed_deliveries_with_their_last_error_and_a_link_to_every_attempt(browser, operator, box, endpoint):
    grant(operator, "view_delivery", "view_attempt")
    delivery = failed_delivery(make_email(box, subject="Lot 99"), endpoint)
    page = browser.get("/").content.decode()
    section = page[page.index('id="failed"') : page.index('id="emails"')]
    assert "Lot 99" in section and "Last error: HTTP 501" in section and "Resend" in section
    attempts = f"/admin/delivery/delivery/{delivery.pk}/change/#attempts-group"
    assert f'href="{attempts}">2 attempts' in section
    history = browser.get(attempts.split("#")[0]).content.decode()
    assert 'id="attempts-group"' in history and "HTTP 500" in history and "HTTP 501" in history


def test_long_lists_show_their_first_rows_and_link_to_all_of_them_in_the_admin(browser, operator, box, endpoint):
    grant(operator, "view_delivery")
    for i in range(12):
        Delivery.objects.create(
            email=make_email(box, subject=f"Parked {i}"),
            endpoint=endpoint,
            status="held",
            next_attempt_at=timezone.now() + dt.timedelta(hours=i),
        )
    page = browser.get("/").content.decode()
    section = page[page.index('id="held"') : page.index('id="failed"')]
    assert section.count("<tr>") == 1 + 10 and "Parked 9" in section and "Parked 10" not in section
    assert "The 10 soonest of 12 shown here" in section
    listing = "/admin/delivery/delivery/?status__exact=held"
    assert f'href="{listing}">all 12 held deliveries in the admin' in section
    assert "Parked 11" in browser.get(listing).content.decode()


def test_resend_queues_the_delivery_and_the_sender_delivers_it(browser, box, endpoint, schedule, receiver):
    delivery = failed_delivery(make_email(box), endpoint)
    response = browser.post(f"/dashboard/deliveries/{delivery.pk}/resend", follow=True)
    assert "queued again" in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.status == "delivered"  # the job ran inline (test mode)
    [request] = receiver.received
    assert request.headers["webhook-id"] == delivery.webhook_id


def test_send_test_webhook_queues_a_signed_test_and_records_the_answer(browser, endpoint, receiver):
    receiver.then(Reply(200, {"success": True}))
    response = browser.post("/dashboard/test-webhook", {"endpoint": endpoint.pk}, follow=True)
    assert "Signed test webhook to app queued" in response.content.decode()
    [request] = receiver.received
    Webhook(str(endpoint.secret)).verify(request.body, request.headers)
    assert request.headers["webhook-id"].startswith("msg_test_")
    endpoint.refresh_from_db()
    assert endpoint.last_test_result.startswith("OK: HTTP 200")
    assert endpoint.last_test_result in response.content.decode()


def test_check_now_queues_a_poll_that_ignores_the_schedule(browser, mailbox, imap, time_machine):
    from tests.mail.corpus import eml

    Mailbox.objects.filter(pk=mailbox.pk).update(active_days="5")  # never active on this weekday
    time_machine.move_to(dt.datetime(2026, 11, 4, 12, 0, tzinfo=dt.UTC), tick=True)  # a Wednesday
    imap.append(eml("recadrage_dropbox_folder.eml"))
    response = browser.post(f"/dashboard/mailboxes/{mailbox.pk}/check", follow=True)
    assert "Check of orders queued" in response.content.decode()
    assert Email.objects.filter(mailbox=mailbox).count() == 1


def test_generate_magic_link_shows_a_working_link_once(browser, operator):
    response = browser.post("/dashboard/magic-links", {"kind": "permanent"})
    page = response.content.decode()
    assert "New long-lived sign-in link" in page and 'data-copy="#magic-link-url"' in page
    link = MagicLink.objects.get()
    assert link.user == operator and not link.one_time and link.created_by == "dashboard:alice"
    url = response.context["url"]
    assert url.startswith("http://testserver/login/magic/")
    assert Client().post(url.removeprefix("http://testserver")).status_code == 302


def test_it_shows_r2_links_and_deployments(browser):
    StoredLink.objects.create(
        source_url="https://www.dropbox.com/s/a?dl=1",
        r2_url="https://media.example/a",
        provider="dropbox",
        original_filename="photos.zip",
    )
    Deployment.objects.create(triggered_by="github", actor="delivery-123", status="succeeded")
    page = browser.get("/").content.decode()
    assert "photos.zip" in page and "https://media.example/a" in page
    assert "GitHub webhook (delivery-123)" in page and 'class="pill deploy-succeeded">Succeeded' in page


def test_buttons_are_posts_with_csrf(operator, box, endpoint):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(operator)
    delivery = failed_delivery(make_email(box), endpoint)
    for path in (
        f"/dashboard/deliveries/{delivery.pk}/resend",
        "/dashboard/test-webhook",
        "/dashboard/magic-links",
        f"/dashboard/mailboxes/{box.pk}/check",
    ):
        assert strict.get(path).status_code == 405, path
        assert strict.post(path).status_code == 403, path
    assert not MagicLink.objects.exists()
    delivery.refresh_from_db()
    assert delivery.status == "failed"


def test_buttons_need_a_signed_in_operator(client, box):
    assert client.post("/dashboard/magic-links", {"kind": "one_time"})["Location"].startswith("/login?next=")
    assert not MagicLink.objects.exists()


def dashboard_queries(browser: Client, query: str = "") -> int:
    with CaptureQueriesContext(connection) as captured:
        assert browser.get("/" + query).status_code == 200
    return len(captured)


def test_the_dashboard_query_count_does_not_grow_with_10000_emails(browser, box, endpoint):
    emails = [make_email(box, subject=f"Lot {i}") for i in range(3)]
    failed_delivery(emails[0], endpoint)  # one row in each list of deliveries, so each list is read at both sizes
    Delivery.objects.create(email=emails[1], endpoint=endpoint, status="held", next_attempt_at=timezone.now())
    Delivery.objects.create(
        email=emails[2], endpoint=endpoint, status="pending", attempt_count=1, next_attempt_at=timezone.now()
    )
    few = dashboard_queries(browser)
    searching = "?decision=delivered&q=bulk"
    make_email(box, subject="Bulk first", decision="delivered")  # the search finds a page at both sizes
    few_searching = dashboard_queries(browser, searching)
    Email.objects.bulk_create(
        [
            Email(
                mailbox=box,
                identity=f"<bulk{i}@t>",
                email_id="x",
                subject=f"Bulk {i}",
                decision="delivered",
                text="x" * 2000,
                links=[{"provider": "dropbox", "raw_url": "https://www.dropbox.com/s/a"}],
            )
            for i in range(10_000)
        ],
        batch_size=1000,
    )
    more_mailboxes = [Mailbox.objects.create(name=f"box{i}", host="h", username="u", password="p") for i in range(3)]
    backup = Endpoint.objects.create(name="backup", url=endpoint.url)
    spare = Endpoint.objects.create(name="spare", url=endpoint.url)
    for email in Email.objects.order_by("-id")[:20]:
        failed_delivery(email, endpoint, attempts=3)
        Delivery.objects.create(email=email, endpoint=backup, status="held", next_attempt_at=timezone.now())
        Delivery.objects.create(
            email=email,
            endpoint=spare,
            status="pending",
            attempt_count=2,
            last_error="HTTP 503",
            next_attempt_at=timezone.now(),
        )
    for i, mailbox in enumerate(more_mailboxes):
        PollerLease.objects.create(
            name=mailbox.lease_name, holder=f"h{i}", expires_at=timezone.now() + dt.timedelta(minutes=1)
        )
    many = dashboard_queries(browser)
    assert many == few, f"{few} queries with 3 emails, {many} with 10,003"
    # 14, the five aggregate queries of the charts, a page read by its keys first, the
    # deliveries by state and the retrying list
    assert many <= 22
    assert dashboard_queries(browser, searching) == few_searching
    # A far page, beyond the count's bound, is read by its keys alone: one query fewer.
    assert dashboard_queries(browser, "?page=401") == many - 1
    assert dashboard_queries(browser, searching + "&page=50") == few_searching - 1
