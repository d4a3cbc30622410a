from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from deploys.models import Deployment


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin[Deployment]):
    list_display = ("id", "created", "triggered_by", "actor", "method", "status", "duration_seconds")
    list_filter = ("status", "triggered_by", "method")
    readonly_fields = ("created", "triggered_by", "actor", "method", "status", "output", "started", "finished")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
