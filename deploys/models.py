from __future__ import annotations

from django.db import models
from django.utils import timezone

TRIGGERS = (("dashboard", "Dashboard"), ("api", "API token"), ("github", "GitHub webhook"), ("cli", "Command line"))
METHODS = (("hook", "Render deploy hook"), ("api", "Render API"), ("command", "Local command"), ("release", "Release"))
STATUSES = (
    ("queued", "Queued"),
    ("running", "Running"),
    ("succeeded", "Succeeded"),
    ("failed", "Failed"),
    ("rolled_back", "Rolled back"),
)


class Deployment(models.Model):
    """One deploy trigger and what came of it."""

    created = models.DateTimeField(default=timezone.now, db_index=True)
    triggered_by = models.CharField(max_length=20, choices=TRIGGERS)
    actor = models.CharField(max_length=150, blank=True, help_text="User, token name or GitHub delivery id")
    method = models.CharField(max_length=20, choices=METHODS, blank=True)
    status = models.CharField(max_length=20, choices=STATUSES, default="queued")
    output = models.TextField(blank=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"Deployment #{self.pk} ({self.get_status_display()})"

    @property
    def duration_seconds(self) -> float | None:
        if self.started and self.finished:
            return (self.finished - self.started).total_seconds()
        return None
