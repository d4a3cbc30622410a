from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from deploys.models import Deployment
from deploys.secrets import mask


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin[Deployment]):
    list_display = ("id", "created", "triggered_by", "actor", "method", "status", "render_deploy_id", "duration")
    list_filter = ("status", "triggered_by", "method")
    search_fields = ("actor", "render_deploy_id", "github_delivery")
    fields = (
        "created",
        "triggered_by",
        "actor",
        "requested_method",
        "method",
        "status",
        "started",
        "finished",
        "render_deploy_id",
        "github_delivery",
        "release",
        "masked_output",
    )
    readonly_fields = fields

    @admin.display(description="Duration (s)")
    def duration(self, obj: Deployment) -> float | None:
        return obj.duration_seconds

    @admin.display(description="Output")
    def masked_output(self, obj: Deployment) -> str:
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', mask(obj.output))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Deployment | None = None) -> bool:
        return False
