"""An order that found no endpoint says why, and goes out once the operator fixes it and
reprocesses it; reprocessing never sends an order twice to the same endpoint."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from delivery.models import Delivery, Endpoint, RoutingRule, RuleCondition
from mail.models import Email, Mailbox
from mail.pipeline import Fetched, record_batch
from mail.reprocess import reprocess, reprocess_one
from tests.conftest import run_together
from tests.mail.corpus import message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def box(db) -> Mailbox:
    return Mailbox.objects.create(name="orders", host="imap.example", username="u", password="p")


@pytest.fixture
def app(receiver, local_targets) -> Endpoint:
    return Endpoint.objects.create(name="app", url=receiver.url)


def orders(box: Mailbox, count: int) -> list[Email]:
    raws = [message(f"Commande {n}", f"https://fromsmash.com/Order{n:04d}", msgid=f"<o{n}@x>") for n in range(count)]
    return record_batch(box, 1, [Fetched(n + 1, raw) for n, raw in enumerate(raws)])


def test_the_first_endpoint_is_the_default_one(app):
    second = Endpoint.objects.create(name="archive", url=app.url)
    assert Endpoint.objects.get(pk=app.pk).is_default and not second.is_default


def test_an_order_without_a_default_endpoint_says_why_and_goes_out_once_reprocessed(box, app, receiver):
    Endpoint.objects.update(is_default=False)  # the operator unticked it
    skipped = orders(box, 4)
    assert {e.decision for e in skipped} == {"skipped_no_endpoint"}
    assert skipped[0].reason == (
        "No default endpoint, and no routing rule matched this email: tick “Is default” on the endpoint that "
        "should receive such mail (Delivery › Endpoints) or add a rule, then reprocess this email "  # noqa: RUF001
        "(Mail › Emails, or the dashboard)."  # noqa: RUF001
    )
    Endpoint.objects.update(is_default=True)
    reprocess([e.pk for e in skipped])
    assert set(Email.objects.values_list("decision", flat=True)) == {"delivered"}  # the sender ran inline
    assert len(receiver.received) == 4
    reprocess([e.pk for e in skipped])  # again: nothing new to send
    assert len(receiver.received) == 4 and Delivery.objects.count() == 4
    assert Email.objects.get(pk=skipped[0].pk).reason == "Delivered to every endpoint."


def test_without_any_enabled_endpoint_the_reason_says_to_add_one(box, app):
    Endpoint.objects.update(enabled=False)
    [email] = orders(box, 1)
    assert email.reason.startswith("No enabled webhook endpoint exists: add one under Delivery › Endpoints")  # noqa: RUF001


def test_reprocessing_adds_only_the_deliveries_an_email_lacks(box, app, receiver):
    [email] = orders(box, 1)
    [first] = Delivery.objects.filter(email=email)
    archive = Endpoint.objects.create(name="archive", url=app.url)
    rule = RoutingRule.objects.create(name="archive orders", endpoint=archive)
    RuleCondition.objects.create(rule=rule, field="subject", operator="contains", value="Commande")
    assert reprocess_one(email.pk) == "Commande 0: accepted"  # handed to delivery; the sender runs on commit
    assert sorted(Delivery.objects.values_list("endpoint__name", flat=True)) == ["app", "archive"]
    assert Delivery.objects.get(pk=first.pk).attempt_count == 1  # the first one untouched
    reprocess_one(email.pk)
    assert Delivery.objects.count() == 2 and len(receiver.received) == 2


def test_simultaneous_reprocessing_creates_one_delivery(box, app):
    Endpoint.objects.update(is_default=False)
    [email] = orders(box, 1)
    Endpoint.objects.update(is_default=True)
    run_together(lambda: reprocess_one(email.pk), threads=3)
    assert Delivery.objects.filter(email=email).count() == 1


def test_mail_whose_body_was_not_kept_is_not_reprocessed(box, app):
    box.allowed_senders = "someone@else.example"
    box.save()
    [email] = orders(box, 1)
    assert email.decision == "skipped_sender"
    Mailbox.objects.update(allowed_senders="")
    assert "its body was not kept" in reprocess_one(email.pk)
    assert Email.objects.get().decision == "skipped_sender" and not Delivery.objects.exists()


def test_the_admin_reprocesses_the_chosen_emails_and_warns_when_no_endpoint_is_default(box, app, receiver):
    Endpoint.objects.update(is_default=False)
    chosen, other = orders(box, 2)
    admin = Client()
    admin.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    warning = admin.get("/admin/delivery/endpoint/").content.decode()
    assert "No endpoint is a default one: accepted emails that match no routing rule are skipped." in warning
    Endpoint.objects.update(is_default=True)
    assert "No endpoint is a default one" not in admin.get("/admin/delivery/endpoint/").content.decode()
    page = admin.post("/admin/mail/email/", {"action": "reprocess", "_selected_action": [chosen.pk]}, follow=True)
    assert "Reprocessing of 1 email(s) queued" in page.content.decode()
    assert Email.objects.get(pk=chosen.pk).decision == "delivered"
    assert Email.objects.get(pk=other.pk).decision == "skipped_no_endpoint"
    assert len(receiver.received) == 1
