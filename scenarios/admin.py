from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django_q.tasks import async_task

from scenarios.models import ScenarioToggle


@admin.action(description="Retry the selected failed toggles now")
def retry_now(modeladmin: Any, request: HttpRequest, queryset: QuerySet[ScenarioToggle]) -> None:
    count = queryset.filter(status="failed").update(next_attempt_at=timezone.now())
    async_task("scenarios.tasks.sync_scenarios", task_name="sync Make.com scenarios")
    messages.info(request, f"{count} toggle(s) queued for a retry; refresh to see the result.")


@admin.register(ScenarioToggle)
class ScenarioToggleAdmin(admin.ModelAdmin[ScenarioToggle]):
    """Every start and stop of the Make.com scenarios: the failed ones stay here, retried, until done."""

    list_display = (
        "created",
        "scenario",
        "scenario_id",
        "action",
        "status",
        "attempts",
        "status_code",
        "error",
        "next_attempt_at",
        "finished_at",
    )
    list_filter = ("status", "scenario", "action")
    actions = [retry_now]
    readonly_fields = [f.name for f in ScenarioToggle._meta.fields if f.editable]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ScenarioToggle | None = None) -> bool:
        return False

    @admin.display(description="Last error")
    def error(self, obj: ScenarioToggle) -> str:
        return obj.last_error[:80]
