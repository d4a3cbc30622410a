from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django_q.tasks import async_task

from delivery.forms import WeekdaysField
from mail import lease
from mail.models import WORKING_DAYS, Email, GmailIngress, Mailbox, RawMessage


class MailboxForm(forms.ModelForm):  # type: ignore[type-arg]
    # The password typed in this very form comes back when another field has an error, so it
    # need not be typed again; the stored one is never put in the page.
    password = forms.CharField(
        widget=forms.PasswordInput(render_value=True),
        required=False,
        help_text="Stored encrypted and never shown. Leave empty to keep the current password.",
    )
    active_days = WeekdaysField(
        [str(day) for day in range(7)],
        initial=WORKING_DAYS,
        help_text="Days the mailbox is watched.",
        error_messages={"required": "Choose at least one day."},
    )

    class Meta:
        model = Mailbox
        # The admin builds the form from MailboxAdmin.fieldsets; this only names the fields set here.
        fields = ("password", "active_days")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial["password"] = ""  # never shown back  # nosec B105

    def clean_password(self) -> str:
        password: str = self.cleaned_data["password"]
        if password:
            return password
        if self.instance.pk:
            return str(self.instance.password)
        raise forms.ValidationError("A password is required for a new mailbox.")


@admin.action(description="Test the connection (queued; the result appears on the mailbox)")
def test_connection(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Mailbox]) -> None:
    for mailbox in queryset:
        Mailbox.objects.filter(pk=mailbox.pk).update(last_test_result="Queued…", last_test_at=timezone.now())
        async_task("mail.tasks.test_mailbox", mailbox.pk, task_name=f"test {mailbox.name}")
    messages.info(request, f"Connection test queued for {queryset.count()} mailbox(es); refresh to see the result.")


@admin.register(Mailbox)
class MailboxAdmin(admin.ModelAdmin[Mailbox]):
    form = MailboxForm
    list_display = ("name", "username", "host", "enabled", "mode", "poller", "last_good_cycle", "error_now")
    list_filter = ("enabled", "mode")
    actions = [test_connection]
    readonly_fields = (
        "poller",
        "uidvalidity",
        "last_uid",
        "last_good_cycle",
        "last_error",
        "last_error_at",
        "last_test_result",
        "last_test_at",
        "last_check_result",
        "last_check_at",
    )
    fieldsets = (
        (None, {"fields": ("name", "enabled", "host", "port", "use_ssl", "username", "password", "folder")}),
        ("Which mail", {"fields": ("allowed_senders", "subject_group_dedup", "subject_group_monthly")}),
        (
            "When",
            {
                "fields": (
                    "timezone",
                    "active_days",
                    "active_start",
                    "active_end",
                    "vacation_start",
                    "vacation_end",
                    "mode",
                    "poll_interval_seconds",
                    "inactive_interval_seconds",
                )
            },
        ),
        ("After recording", {"fields": ("seen_policy", "flag_keyword")}),
        ("State", {"fields": readonly_fields}),
    )

    @admin.display(description="Poller (lease holder)")
    def poller(self, obj: Mailbox) -> str:
        return lease.holder(obj.lease_name) or "—"

    @admin.display(description="Error now")
    def error_now(self, obj: Mailbox) -> str:
        return obj.current_error[:120] or "—"


@admin.action(description="Reprocess: decide again (no second delivery to an endpoint that has one)")
def reprocess(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Email]) -> None:
    ids = list(queryset.values_list("pk", flat=True))
    async_task("mail.tasks.reprocess_emails", ids, task_name=f"reprocess {len(ids)} email(s)")
    messages.info(request, f"Reprocessing of {len(ids)} email(s) queued; refresh to see their new decision.")


@admin.register(Email)
class EmailAdmin(admin.ModelAdmin[Email]):
    list_display = ("received_at", "mailbox", "source", "sender", "subject", "detector", "decision", "link_count")
    list_filter = ("decision", "detector", "mailbox", "source")
    actions = [reprocess]
    search_fields = ("subject", "sender")
    list_select_related = ("mailbox",)
    date_hierarchy = "received_at"
    exclude = ("text",)
    readonly_fields = [f.name for f in Email._meta.fields if f.name != "text"] + ["raw_message"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Email]:
        return super().get_queryset(request).defer("text")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Email | None = None) -> bool:
        return False

    @admin.display(description="Links")
    def link_count(self, obj: Email) -> int:
        return len(obj.links)

    @admin.display(description="Raw message")
    def raw_message(self, obj: Email) -> str:
        if not RawMessage.objects.filter(email=obj).exists():
            return "Not kept (purged after the retention period, or not stored for this decision)"
        url = reverse("admin:mail_email_raw", args=[obj.pk])
        return format_html('<a href="{}">Download .{}</a>', url, "json" if obj.source == "gmail_push" else "eml")

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.raw_view)
        return [path("<int:pk>/raw/", view, name="mail_email_raw"), *super().get_urls()]

    def raw_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        if not self.has_view_permission(request):
            raise Http404
        raw = RawMessage.read(pk)
        if raw is None:
            raise Http404("No raw message is kept for this email")
        # A pushed email's raw message is the JSON the Apps Script posted.
        pushed = Email.objects.filter(pk=pk, source="gmail_push").exists()
        kind, ext = ("application/json", "json") if pushed else ("message/rfc822", "eml")
        response = HttpResponse(raw, content_type=kind)
        response["Content-Disposition"] = f'attachment; filename="email-{pk}.{ext}"'
        return response


@admin.register(GmailIngress)
class GmailIngressAdmin(admin.ModelAdmin[GmailIngress]):
    """One row: the kill switch and rules of mail pushed to /api/ingress/gmail."""

    list_display = ("__str__", "enabled", "allowed_senders", "subject_group_dedup", "timezone")
    fieldsets = (
        (None, {"fields": ("enabled",)}),
        ("Which mail", {"fields": ("allowed_senders", "subject_group_dedup", "subject_group_monthly", "timezone")}),
    )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not GmailIngress.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: GmailIngress | None = None) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        GmailIngress.load()  # the row always exists, seeded from the environment
        return super().changelist_view(request, extra_context)
