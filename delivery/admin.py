from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.html import format_html

from delivery import sender
from delivery.forms import WeekdaysField
from delivery.models import (
    WEEKDAY_NAMES,
    Attempt,
    Delivery,
    Endpoint,
    LinkTransfer,
    RoutingRule,
    RuleCondition,
    SendingSchedule,
    StoredLink,
)
from delivery.outbox import kick_sender


@admin.action(description="Rotate the signing secret (the new one is shown once)")
def rotate_secret(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
    for endpoint in queryset:
        secret = endpoint.rotate_secret()
        messages.warning(request, f"New signing secret of {endpoint}: {secret} — copy it now, it is not shown again.")


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin[Endpoint]):
    list_display = ("name", "url", "enabled", "is_default", "success_rule", "rate_limit_per_hour")
    list_filter = ("enabled", "is_default")
    actions = [rotate_secret]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fields = (
        "name",
        "url",
        "enabled",
        "is_default",
        "timeout_seconds",
        "rate_limit_per_hour",
        "success_rule",
        "include_email_content",
    )

    def save_model(self, request: HttpRequest, obj: Endpoint, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not change:
            messages.warning(
                request, f"Signing secret of {obj}: {obj.secret} — copy it to the receiver now, it is not shown again."
            )

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.method == "GET" and Endpoint.default_missing():
            messages.warning(request, NO_DEFAULT_WARNING)
        return super().changelist_view(request, extra_context)


NO_DEFAULT_WARNING = (
    "No endpoint is a default one: accepted emails that match no routing rule are skipped. Tick “Is default” "
    "on the endpoint that should receive them, then reprocess the skipped emails."
)


class SendingScheduleForm(forms.ModelForm):  # type: ignore[type-arg]
    absence_days = WeekdaysField(WEEKDAY_NAMES, required=False, help_text=SendingSchedule.ABSENCE_HELP)

    class Meta:
        model = SendingSchedule
        fields = ("sending_enabled", "window_start", "window_end", "absence_days", "timezone")


@admin.register(SendingSchedule)
class SendingScheduleAdmin(admin.ModelAdmin[SendingSchedule]):
    form = SendingScheduleForm
    list_display = ("__str__", "sending_enabled", "window_start", "window_end", "absence_days", "timezone")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not SendingSchedule.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: SendingSchedule | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: SendingSchedule, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # Held deliveries re-check the new schedule at once.
        Delivery.objects.filter(status="held").update(next_attempt_at=timezone.now())
        kick_sender()


class RuleConditionInline(admin.TabularInline[RuleCondition, RoutingRule]):
    model = RuleCondition
    min_num = 1
    extra = 0


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin[RoutingRule]):
    list_display = ("order", "name", "enabled", "endpoint", "priority", "stop_processing")
    list_display_links = ("name",)
    list_editable = ("order", "enabled")
    inlines = [RuleConditionInline]


class AttemptInline(admin.TabularInline[Attempt, Delivery]):
    model = Attempt
    extra = 0
    can_delete = False
    readonly_fields = ("started", "outcome", "status_code", "duration_ms", "error", "response_snippet")
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.action(description="Resend")
def resend(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
    count = sender.resend(list(queryset))
    kick_sender()
    messages.info(request, f"{count} delivery(ies) queued again.")


@admin.action(description="Resend all failed deliveries of the selected deliveries' endpoints")
def resend_failed_for_endpoint(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
    endpoints = set(queryset.values_list("endpoint_id", flat=True))
    count = sender.resend(list(Delivery.objects.filter(endpoint_id__in=endpoints, status="failed")))
    kick_sender()
    messages.info(request, f"{count} failed delivery(ies) queued again.")


@admin.action(description="Send now (retrying or held deliveries; the attempt count is kept)")
def send_now(modeladmin: Any, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
    count = sender.send_now(list(queryset))
    kick_sender()
    messages.info(request, f"{count} delivery(ies) queued to be sent now.")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin[Delivery]):
    list_display = ("created", "webhook_id", "email_link", "endpoint", "status", "attempt_count", "next_attempt_at")
    list_filter = ("status", "endpoint")
    search_fields = ("webhook_id", "email__subject", "email__sender")
    list_select_related = ("endpoint", "email")
    actions = [send_now, resend, resend_failed_for_endpoint]
    inlines = [AttemptInline]
    readonly_fields = [f.name for f in Delivery._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False

    @admin.display(description="Email")
    def email_link(self, obj: Delivery) -> str:
        return format_html('<a href="/admin/mail/email/{}/change/">{}</a>', obj.email_id, obj.email.subject[:60])


@admin.register(Attempt)
class AttemptAdmin(admin.ModelAdmin[Attempt]):
    list_display = ("started", "delivery", "outcome", "status_code", "duration_ms", "error")
    list_filter = ("outcome",)
    list_select_related = ("delivery",)
    readonly_fields = [f.name for f in Attempt._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Attempt | None = None) -> bool:
        return False


@admin.register(StoredLink)
class StoredLinkAdmin(admin.ModelAdmin[StoredLink]):
    list_display = ("created", "provider", "source_url", "r2_url", "original_filename")
    list_filter = ("provider",)
    search_fields = ("source_url", "r2_url", "original_filename")
    readonly_fields = ("source_url", "r2_url", "provider", "original_filename", "email", "created")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(LinkTransfer)
class LinkTransferAdmin(admin.ModelAdmin[LinkTransfer]):
    list_display = ("created", "provider", "source_url", "status", "r2_url", "error")
    list_filter = ("status", "provider")
    readonly_fields = [f.name for f in LinkTransfer._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: LinkTransfer | None = None) -> bool:
        return False
