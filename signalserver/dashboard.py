"""The operators' dashboard: what the service did and is doing, and buttons that queue jobs."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_POST
from django_q.tasks import async_task

from delivery import sender
from delivery.models import Delivery, Endpoint, StoredLink
from delivery.outbox import kick_sender
from mail import search
from mail.models import DECISIONS, DETECTORS, Email, Mailbox, PollerLease
from mail.tasks import request_check
from signalserver import charts, snapshot
from signalserver.accounts import magic_link_url
from signalserver.models import MagicLink
from signalserver.paging import BoundedPaginator

EMAILS_PER_PAGE = 25
# Each list of deliveries shows its first rows, with a link to all of them in the admin (where
# the same actions are): a page of 100 rows cost more to draw than everything else together.
LIST_ROWS = 10
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

    @property
    def failing(self) -> bool:
        """A poller holds the lease but its last attempt failed (it is retrying, not polling)."""
        return bool(self.holder and self.mailbox.current_error)


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

    def controls(self, mailboxes: Sequence[Mailbox]) -> SafeString:
        """The filter's inputs, drawn here in one pass: the widgets' own templates cost a tenth of the page."""
        value = {name: str(self.data.get(name, "")) for name in ("q", "decision", "detector", "mailbox")}
        search = format_html(
            '<input type="search" name="q" value="{}" maxlength="200" placeholder="{}" aria-label="Search">',
            value["q"],
            "Subject or sender",
        )
        choices = {
            "decision": [("", "Any decision"), *DECISIONS],
            "detector": [("", "Any detector"), ("none", "None"), *DETECTORS],
            "mailbox": [("", "Any mailbox"), *((m.name, m.name) for m in mailboxes)],
        }
        selects = ((select_html(name, name.title(), options, value[name]),) for name, options in choices.items())
        return format_html("{} {}", search, format_html_join(" ", "{}", selects))

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


def select_html(name: str, label: str, choices: Iterable[tuple[str, str]], chosen: str) -> SafeString:
    options = format_html_join(
        "",
        '<option value="{}"{}>{}</option>',
        ((value, " selected" if value == chosen else "", text) for value, text in choices),
    )
    return format_html('<select name="{}" aria-label="{}">{}</select>', name, label, options)


class MagicLinkForm(forms.Form):
    kind = forms.ChoiceField(choices=(("one_time", "One-time"), ("permanent", "Long-lived (until revoked)")))


class TestWebhookForm(forms.Form):
    endpoint = forms.ModelChoiceField(queryset=Endpoint.objects.filter(enabled=True))


class ReprocessForm(forms.Form):
    email = forms.ModelMultipleChoiceField(queryset=Email.objects.only("pk"))


def mailbox_states(now: dt.datetime) -> list[MailboxState]:
    mailboxes = list(Mailbox.objects.defer("password"))  # not decrypted for nothing
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
    paginator = BoundedPaginator(emails.order_by("-received_at", "-id"), EMAILS_PER_PAGE)
    return paginator.get_page(page_number)


def decision_counts(since: dt.datetime) -> dict[str, int]:
    # Every decision named, so the (decision, received_at) index is searched decision by decision
    # over the last day instead of read whole.
    recent = Email.objects.filter(received_at__gte=since, decision__in=[key for key, _ in DECISIONS])
    rows = recent.values("decision").annotate(n=Count("id"))
    return {row["decision"]: row["n"] for row in rows.order_by()}


def deliveries(status: str, order: str, limit: int) -> QuerySet[Delivery]:
    return _with_email(Delivery.objects.filter(status=status)).order_by(order, "pk")[:limit]


def _with_email(rows: QuerySet[Delivery]) -> QuerySet[Delivery]:
    # Not the endpoint's secret: decrypting it for each row was a third of the view's time.
    return rows.select_related("endpoint", "email").defer("email__text", "payload", "endpoint__secret")


RETRYING = Q(status__in=("pending", "sending"), attempt_count__gt=0)


def retrying_deliveries(limit: int = LIST_ROWS) -> QuerySet[Delivery]:
    """Deliveries whose last attempt failed and that will be tried again, the soonest first."""
    return _with_email(Delivery.objects.filter(RETRYING)).order_by("next_attempt_at", "pk")[:limit]


def delivery_counts() -> dict[str, int]:
    """Deliveries not (yet) delivered, by state. Held and failed ones are counted from the
    (status, created) index alone; the retrying ones are among the few rows still queued."""
    parked = Delivery.objects.filter(status__in=("held", "failed")).values_list("status").annotate(n=Count("pk"))
    counts = {"held": 0, "failed": 0, **dict(parked.order_by())}
    counts["retrying"] = Delivery.objects.filter(RETRYING).count()
    return counts


# The parts of the page drawn from the rows alone, kept while the database shows the same rows
# (signalserver/snapshot.py); the mailboxes, whose state also moves with the clock, and the
# deployments, drawn for the user, are drawn on each view.
HISTORY_PARTS = ("summary", "tools", "deliveries", "emails", "links")
# Kept parts carry this in place of the viewer's CSRF token, which each view puts in.
CSRF_PLACEHOLDER = f"csrf-{secrets.token_hex(16)}"


def history(params: QueryDict, now: dt.datetime) -> dict[str, str]:
    form = EmailFilterForm(params)
    mailboxes = list(Mailbox.objects.only("name"))  # read here: never older than the state kept under
    endpoints = list(Endpoint.objects.filter(enabled=True).defer("secret"))
    waiting = delivery_counts()
    context = {
        "params": params,
        "filters_html": form.controls(mailboxes),
        "emails": email_page(form, params.get("page")),
        "counts": decision_counts(now - dt.timedelta(hours=24)),
        "delivery_counts": waiting,
        # A list is read only when its count says it has rows: most of the time, none has.
        "retrying": retrying_deliveries() if waiting["retrying"] else [],
        "held": deliveries("held", "next_attempt_at", LIST_ROWS) if waiting["held"] else [],
        "failed": deliveries("failed", "-created", LIST_ROWS) if waiting["failed"] else [],
        "links": StoredLink.objects.order_by("-created")[:10],
        "endpoints": endpoints,
        "no_default_endpoint": Endpoint.default_missing(endpoints),
        "magic_form": MagicLinkForm(),
        "csrf_token": CSRF_PLACEHOLDER,
    }
    return {part: render_to_string(f"dashboard/_{part}.html", context) for part in HISTORY_PARTS}


@login_required
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    mailboxes = mailbox_states(now)
    # The minute is in the key: the counts cover the last 24 hours, which move with the clock.
    # Minutes that start half a minute after the charts' own (charts.panel), so that one view
    # does not draw both again.
    key = ("dashboard", request.GET.urlencode(), int((now.timestamp() - 30) // 60))
    parts = snapshot.keep(key, lambda: history(request.GET, now))
    token = get_token(request)
    context = {
        "mailboxes": mailboxes,
        "charts": charts.panel(now),
        # The kept parts are our own templates' output, escaped when they were drawn.
        "history": {part: mark_safe(html.replace(CSRF_PLACEHOLDER, token)) for part, html in parts.items()},  # noqa: S308  # nosec B308 B703
    }
    return render(request, "dashboard/index.html", context)


def _back(request: HttpRequest) -> HttpResponse:
    return HttpResponseRedirect(reverse("dashboard"))


@login_required
@require_POST
def check_mailbox(request: HttpRequest, pk: int) -> HttpResponse:
    mailbox = get_object_or_404(Mailbox, pk=pk)
    if not request_check(mailbox):
        messages.info(request, f"A check of {mailbox} is already pending; its result appears next to its button.")
        return _back(request)
    messages.success(
        request,
        f"Check of {mailbox} queued: new mail is fetched now, whatever the schedule says; "
        "the result appears next to its button.",
    )
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
    messages.success(request, f"Signed test webhook to {endpoint} queued; its answer appears under the button.")
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
def send_delivery_now(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = get_object_or_404(Delivery, pk=pk)
    if sender.send_now([delivery]):
        kick_sender()
        messages.success(request, f"Delivery {delivery.webhook_id} is being sent now.")
    else:
        messages.info(request, f"Delivery {delivery.webhook_id} is no longer waiting ({delivery.status}).")
    return _back(request)


@login_required
@require_POST
def reprocess_emails(request: HttpRequest) -> HttpResponse:
    form = ReprocessForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Tick the emails to reprocess first.")
        return _back(request)
    ids = [email.pk for email in form.cleaned_data["email"]]
    async_task("mail.tasks.reprocess_emails", ids, task_name=f"reprocess {len(ids)} email(s)")
    messages.success(
        request, f"Reprocessing of {len(ids)} email(s) queued: no endpoint gets a second delivery of an email."
    )
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
