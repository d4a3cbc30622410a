from __future__ import annotations

from django.db import models
from django.utils.timezone import now

ACTIONS = (("start", "Start"), ("stop", "Stop"))
STATUSES = (
    ("pending", "Pending"),
    ("sending", "Sending"),
    ("failed", "Failed: will be retried"),
    ("done", "Done"),
    ("superseded", "Superseded: no longer wanted"),
)
# A toggle still to be made; at most one per scenario.
OPEN = ("pending", "sending", "failed")
CHANNELS = (("api", "Make API"), ("control_webhook", "Control webhook"))


class ScenarioToggle(models.Model):
    """One start or stop of a Make.com scenario, asked for on a change of state and retried until done."""

    scenario = models.CharField(max_length=40, help_text="autorepondeur or recadrage")
    scenario_id = models.PositiveBigIntegerField()
    action = models.CharField(max_length=5, choices=ACTIONS)
    reason = models.TextField(blank=True, help_text="Why the scenario should be in this state")
    via = models.CharField(max_length=20, choices=CHANNELS)
    status = models.CharField(max_length=12, choices=STATUSES, default="pending")
    attempts = models.PositiveIntegerField(default=0)
    status_code = models.PositiveIntegerField(null=True, blank=True, help_text="HTTP status of the last attempt")
    response_snippet = models.TextField(blank=True)
    last_error = models.TextField(blank=True)
    created = models.DateTimeField(default=now)
    next_attempt_at = models.DateTimeField(default=now)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            # Two schedulers deciding at once create one toggle, not two.
            models.UniqueConstraint(
                fields=["scenario"], condition=models.Q(status__in=OPEN), name="scenarios_one_open_toggle"
            )
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="scenarios_toggle_due")]

    def __str__(self) -> str:
        return f"{self.action} {self.scenario} ({self.status})"
