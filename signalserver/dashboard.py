"""The operators' dashboard: what the service did and is doing, and buttons that queue jobs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page
from django.db.models import Count, Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_q.tasks import async_task

from delivery import sender
from delivery.models import Attempt, Delivery, Endpoint, StoredLink
from delivery.outbox import kick_sender
from deploys.models import Deployment
from mail import search
from mail.models import DECISIONS, DETECTORS, Email, Mailbox, PollerLease
from signalserver import charts
from signalserver.accounts import magic_link_url
from signalserver.models import MagicLink
from signalserver.paging import BoundedPaginator

EMAILS_PER_PAGE = 25
EMAIL_COLUMNS = (
    "pk",
    "received_at",
    "subject",
    "sender",
    "detector",
    "delivery_time",
    "decision",
    "reason",
    "held_until",
    "links",
    "mailbox__name",
)


@dataclass
class MailboxState:
    mailbox: Mailbox
    holder: str
    active_now: bool
    next_active: dt.datetime | None


class EmailFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        max_length=200,
        label="Search",
        widget=forms.TextInput(attrs={"placeholder": "Subject or sender", "type": "search", "aria-label": "Search"}),
    )
    decision = forms.ChoiceField(required=False, choices=(("", "Any decision"), *DECISIONS))
    detector = forms.ChoiceField(required=False, choices=(("", "Any detector"), ("none", "None"), *DETECTORS))
    mailbox = forms.ModelChoiceField(
        required=False, queryset=Mailbox.objects.all(), empty_label="Any mailbox", to_field_name="name"
    )

    def filter(self, emails: QuerySet[Email]) -> QuerySet[Email]:
        if not self.is_valid():
            return emails
        data = self.cleaned_data
        if data["q"]:
            emails = emails.filter(search.subject_or_sender_contains(data["q"]))
        if data["decision"]:
            emails = emails.filter(decision=data["decision"])
        if data["detector"]:
            emails = emails.filter(detector="" if data["detector"] == "none" else data["detector"])
        if data["mailbox"]:
            emails = emails.filter(mailbox=data["mailbox"])
        return emails


class MagicLinkForm(forms.Form):
    kind = forms.ChoiceField(choices=(("one_time", "One-time"), ("permanent", "Long-lived (until revoked)")))


class TestWebhookForm(forms.Form):
    endpoint = forms.ModelChoiceField(queryset=Endpoint.objects.filter(enabled=True))


def mailbox_states(now: dt.datetime) -> list[MailboxState]:
    mailboxes = list(Mailbox.objects.all())
    leases = PollerLease.objects.filter(name__in=[m.lease_name for m in mailboxes], expires_at__gte=now)
    holders = dict(leases.exclude(holder="").values_list("name", "holder"))
    states = []
    for mailbox in mailboxes:
        active = mailbox.enabled and mailbox.is_active(now)
        upcoming = None if active or not mailbox.enabled else mailbox.next_active(now)
        states.append(MailboxState(mailbox, holders.get(mailbox.lease_name, ""), active, upcoming))
    return states


def email_page(form: EmailFilterForm, page_number: str | None) -> Page[Email]:
    emails = form.filter(Email.objects.select_related("mailbox").only(*EMAIL_COLUMNS))
    paginator = BoundedPaginator(emails.order_by("-received_at", "-id"), EMAILS_PER_PAGE, page_number)
    return paginator.get_page(page_number)


def decision_counts(since: dt.datetime) -> dict[str, int]:
    rows = Email.objects.filter(received_at__gte=since).values("decision").annotate(n=Count("id"))
    return {row["decision"]: row["n"] for row in rows.order_by()}


def deliveries(status: str, order: str, limit: int) -> QuerySet[Delivery]:
    rows = Delivery.objects.filter(status=status).select_related("endpoint", "email").defer("email__text", "payload")
    return rows.order_by(order, "pk")[:limit]


@login_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    form = EmailFilterForm(request.GET)
    failed = deliveries("failed", "-created", 20).prefetch_related(
        Prefetch("attempts", queryset=Attempt.objects.order_by("-started", "-id"))
    )
    context = {
        "now": now,
        "mailboxes": mailbox_states(now),
        "filter_form": form,
        "emails": email_page(form, request.GET.get("page")),
        "counts": decision_counts(now - dt.timedelta(hours=24)),
        "charts": charts.recent(now),
        "held": deliveries("held", "next_attempt_at", 50),
        "failed": failed,
        "links": StoredLink.objects.order_by("-created")[:10],
        "deployments": Deployment.objects.order_by("-created")[:5],
        "endpoints": Endpoint.objects.filter(enabled=True),
        "magic_form": MagicLinkForm(),
        "filters": request.GET.copy(),
    }
    return render(request, "dashboard/index.html", context)


def _back(request: HttpRequest) -> HttpResponse:
    return HttpResponseRedirect(reverse("dashboard"))


@login_required
@require_POST
def check_mailbox(request: HttpRequest, pk: int) -> HttpResponse:
    mailbox = get_object_or_404(Mailbox, pk=pk)
    async_task("mail.tasks.check_now", mailbox.pk, task_name=f"check {mailbox.name}")
    messages.success(request, f"Check of {mailbox} queued: new mail is fetched now, whatever the schedule says.")
    return _back(request)


@login_required
@require_POST
def send_test_webhook(request: HttpRequest) -> HttpResponse:
    form = TestWebhookForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose an enabled endpoint for the test webhook.")
        return _back(request)
    endpoint = form.cleaned_data["endpoint"]
    Endpoint.objects.filter(pk=endpoint.pk).update(last_test_result="Queued…", last_test_at=timezone.now())
    async_task("delivery.tasks.send_test_webhook", endpoint.pk, task_name=f"test webhook {endpoint.name}")
    messages.success(request, f"Signed test webhook to {endpoint} queued; its answer appears under Endpoints.")
    return _back(request)


@login_required
@require_POST
def resend_delivery(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(Delivery, pk=pk)
    sender.resend([delivery])
    kick_sender()
    messages.success(request, f"Delivery {delivery.webhook_id} queued again.")
    return _back(request)


@login_required
@require_POST
def create_magic_link(request: HttpRequest) -> HttpResponse:
    form = MagicLinkForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one-time or long-lived.")
        return _back(request)
    permanent = form.cleaned_data["kind"] == "permanent"
    link, token = MagicLink.issue(request.user, permanent=permanent, created_by=f"dashboard:{request.user}")
    context = {"link": link, "url": magic_link_url(token, request)}
    return render(request, "dashboard/magic_link_created.html", context)
