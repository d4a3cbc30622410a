from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from signalserver.accounts import magic_link_url
from signalserver.models import API_SCOPES, ApiToken, LoginFailure, MagicLink, WorkerHeartbeat


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(admin.ModelAdmin[WorkerHeartbeat]):
    list_display = ("name", "host", "pid", "seen_at")
    readonly_fields = ("name", "host", "pid", "seen_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class MagicLinkForm(forms.ModelForm):  # type: ignore[type-arg]
    permanent = forms.BooleanField(required=False, help_text="Reusable until revoked, instead of one-time.")
    ttl_seconds = forms.IntegerField(
        required=False, min_value=60, help_text="One-time links: seconds of validity (default MAGIC_LINK_TTL_SECONDS)."
    )

    class Meta:
        model = MagicLink
        fields = ("user",)


@admin.action(description="Revoke the selected links")
def revoke(modeladmin: Any, request: HttpRequest, queryset: QuerySet[MagicLink]) -> None:
    count = queryset.filter(revoked_at=None).update(revoked_at=timezone.now())
    messages.info(request, f"{count} link(s) revoked.")


@admin.action(description="Revoke every link of the selected links' users")
def revoke_all_for_user(modeladmin: Any, request: HttpRequest, queryset: QuerySet[MagicLink]) -> None:
    users = set(queryset.values_list("user_id", flat=True))
    count = MagicLink.objects.filter(user_id__in=users, revoked_at=None).update(revoked_at=timezone.now())
    messages.info(request, f"{count} link(s) of {len(users)} user(s) revoked.")


@admin.register(MagicLink)
class MagicLinkAdmin(admin.ModelAdmin[MagicLink]):
    form = MagicLinkForm
    list_display = ("pk", "user", "kind", "state", "created", "created_by", "expires_at", "use_count", "last_used_at")
    list_filter = ("one_time", "user")
    list_select_related = ("user",)
    actions = [revoke, revoke_all_for_user]
    readonly_fields = (
        "user",
        "one_time",
        "created",
        "created_by",
        "expires_at",
        "used_at",
        "last_used_at",
        "use_count",
        "revoked_at",
    )

    def get_readonly_fields(self, request: HttpRequest, obj: MagicLink | None = None) -> Any:
        return self.readonly_fields if obj else ()

    def get_fields(self, request: HttpRequest, obj: MagicLink | None = None) -> Any:
        return self.readonly_fields if obj else ("user", "permanent", "ttl_seconds")

    @admin.display(description="State")
    def state(self, obj: MagicLink) -> str:
        return obj.state()

    def save_model(self, request: HttpRequest, obj: MagicLink, form: Any, change: bool) -> None:
        if change:
            return  # links are never edited, only revoked
        obj.created_by = f"admin:{request.user}"
        token = obj.arm(form.cleaned_data.get("ttl_seconds"), form.cleaned_data.get("permanent", False))
        obj.save()
        messages.warning(request, f"Sign-in link for {obj.user}: {magic_link_url(token, request)} — copy it now.")


class ApiTokenForm(forms.ModelForm):  # type: ignore[type-arg]
    scope_choices = forms.MultipleChoiceField(
        choices=API_SCOPES, widget=forms.CheckboxSelectMultiple, label="Scopes", required=True
    )

    class Meta:
        model = ApiToken
        fields = ("name", "expires_at")


@admin.action(description="Revoke the selected tokens")
def revoke_tokens(modeladmin: Any, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
    count = queryset.filter(revoked_at=None).update(revoked_at=timezone.now())
    messages.info(request, f"{count} token(s) revoked.")


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin[ApiToken]):
    form = ApiTokenForm
    list_display = ("name", "prefix", "scopes", "created", "created_by", "expires_at", "last_used_at", "revoked_at")
    actions = [revoke_tokens]
    readonly_fields = ("name", "prefix", "scopes", "created", "created_by", "expires_at", "last_used_at", "revoked_at")

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        return self.readonly_fields if obj else ()

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        return self.readonly_fields if obj else ("name", "scope_choices", "expires_at")

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            return  # tokens are never edited, only revoked
        obj.created_by = str(request.user)
        token = obj.arm(form.cleaned_data["scope_choices"])
        obj.save()
        messages.warning(request, f"API token {obj.name}: {token} — copy it now, it is not shown again.")


@admin.register(LoginFailure)
class LoginFailureAdmin(admin.ModelAdmin[LoginFailure]):
    list_display = ("at", "username", "ip")
    search_fields = ("username", "ip")
    readonly_fields = ("at", "username", "ip")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
