"""What the dashboard keeps between views: kept while the database shows the same rows, drawn
again after any commit, from this process or another one, and never shared across viewers' tokens."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import Client
from django.test.utils import CaptureQueriesContext

from delivery.models import Delivery
from mail.models import Email
from signalserver import snapshot
from tests.delivery.conftest import make_email

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def elsewhere() -> Iterator[BaseDatabaseWrapper]:
    """A second connection to the same database, as another process (a poller, a worker) holds."""
    other = connections.create_connection("default")
    yield other
    other.close()


def commit_elsewhere(other: BaseDatabaseWrapper, subject: str) -> None:
    with other.cursor() as cursor:
        cursor.execute(f"UPDATE {Email._meta.db_table} SET subject = %s", [subject])  # noqa: S608  # nosec B608


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        return self.calls


def test_the_state_stays_the_same_while_nothing_is_written():
    assert snapshot.database_state() is not None
    assert snapshot.database_state() == snapshot.database_state()


def test_a_commit_on_another_connection_changes_the_state(box, elsewhere):
    make_email(box, subject="Lot 1")
    before = snapshot.database_state()
    commit_elsewhere(elsewhere, "Lot 2")
    assert snapshot.database_state() != before


def test_a_write_on_this_connection_changes_the_state(box):
    before = snapshot.database_state()
    make_email(box, subject="Lot 1")
    assert snapshot.database_state() != before


def test_nothing_is_kept_inside_a_transaction(box):
    make = Counter()
    with transaction.atomic():
        assert snapshot.database_state() is None
        assert snapshot.keep("k", make) == 1
        assert snapshot.keep("k", make) == 2


def test_a_value_is_kept_until_the_rows_change(box, elsewhere):
    make_email(box, subject="Lot 1")
    make = Counter()
    assert snapshot.keep("k", make) == 1
    assert snapshot.keep("k", make) == 1
    assert snapshot.keep("other key", make) == 2
    commit_elsewhere(elsewhere, "Lot 2")
    assert snapshot.keep("k", make) == 3
    make_email(box, subject="Lot 3")
    assert snapshot.keep("k", make) == 4


def test_a_new_connection_keeps_nothing_from_the_old_one():
    make = Counter()
    assert snapshot.keep("k", make) == 1
    connection.close()
    assert snapshot.keep("k", make) == 2


def test_a_connection_keeps_a_bounded_number_of_values():
    make = Counter()
    for n in range(snapshot.KEPT_PER_CONNECTION + 1):
        snapshot.keep(n, make)
    assert snapshot.keep(snapshot.KEPT_PER_CONNECTION, make) == snapshot.KEPT_PER_CONNECTION + 1  # the newest stays
    assert snapshot.keep(0, make) == snapshot.KEPT_PER_CONNECTION + 2  # the oldest went


# The dashboard, as operators meet it (no transaction around the view, as in production).


@pytest.fixture
def operator() -> User:
    return User.objects.create_user("alice", password="pw", is_staff=True)


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_second_view_of_unchanged_rows_reads_only_what_is_drawn_each_time(operator, box, settings):
    settings.DASHBOARD_CHARTS_CACHE_SECONDS = 60  # as in production (the charts keep their own cache)
    make_email(box, subject="Lot 1 recadrage")
    browser = signed_in(operator)
    with CaptureQueriesContext(connection) as first:
        browser.get("/?q=Lot")
    with CaptureQueriesContext(connection) as second:
        page = browser.get("/?q=Lot").content.decode()
    assert "Lot 1 recadrage" in page
    # Session, user, mailboxes, leases, the state, deployments.
    assert len(second) == 6 < len(first), [q["sql"][:60] for q in second]


def test_the_dashboard_shows_what_another_process_committed_since_the_last_view(operator, box, elsewhere):
    make_email(box, subject="Lot 1 recadrage")
    browser = signed_in(operator)
    assert "Lot 1 recadrage" in browser.get("/").content.decode()
    assert "Lot 1 recadrage" in browser.get("/").content.decode()  # kept
    commit_elsewhere(elsewhere, "Lot 2 recadrage")
    page = browser.get("/").content.decode()
    assert "Lot 2 recadrage" in page and "Lot 1 recadrage" not in page


def test_the_dashboard_shows_an_operators_action_at_once(operator, box, endpoint):
    email = make_email(box, subject="Lot 4", decision="failed")
    delivery = Delivery.objects.create(email=email, endpoint=endpoint, status="failed", attempt_count=1)
    browser = signed_in(operator)
    assert 'Failed deliveries <span class="count">1</span>' in browser.get("/").content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', browser.get("/").content.decode())
    assert token
    browser.post(f"/dashboard/deliveries/{delivery.pk}/resend", {"csrfmiddlewaretoken": token.group(1)})
    assert 'Failed deliveries <span class="count">0</span>' in browser.get("/").content.decode()


def test_each_viewer_gets_forms_with_their_own_csrf_token(operator, box, endpoint, settings):
    settings.DASHBOARD_CHARTS_CACHE_SECONDS = 60
    email = make_email(box, subject="Lot 5", decision="failed")
    delivery = Delivery.objects.create(email=email, endpoint=endpoint, status="failed", attempt_count=1)
    bob = User.objects.create_user("bob", password="pw", is_staff=True)
    browsers = []
    for user in (operator, bob):  # signed in first: a sign-in writes a session row
        browser = Client(enforce_csrf_checks=True)
        browser.force_login(user)
        browsers.append(browser)
    pages = []
    for browser in browsers:  # no write between the two views
        with CaptureQueriesContext(connection) as queries:
            pages.append(browser.get("/").content.decode())
    assert len(queries) == 6  # bob's page was drawn from what alice's view kept
    form = rf'action="/dashboard/deliveries/{delivery.pk}/resend">.*?value="([^"]+)"'
    tokens = [re.search(form, page, re.S).group(1) for page in pages]  # type: ignore[union-attr]
    assert tokens[0] != tokens[1]
    for browser, token in zip(browsers, tokens, strict=True):
        answer = browser.post(f"/dashboard/deliveries/{delivery.pk}/resend", {"csrfmiddlewaretoken": token})
        assert answer.status_code == 302
        Delivery.objects.filter(pk=delivery.pk).update(status="failed")
