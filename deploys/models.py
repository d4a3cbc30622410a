from __future__ import annotations

import datetime as dt

from django.db import models
from django.db.models.functions import Concat
from django.utils import timezone

TRIGGERS = (("dashboard", "Dashboard"), ("api", "API"), ("github", "GitHub webhook"), ("cli", "Command line"))
METHODS = (("hook", "Render deploy hook"), ("api", "Render API"), ("local", "Local command"), ("release", "Release"))
STATUSES = (
    ("queued", "Queued"),
    ("running", "Running"),
    ("succeeded", "Succeeded"),
    ("failed", "Failed"),
    ("rolled_back", "Rolled back"),
)
FINAL_STATUSES = ("succeeded", "failed", "rolled_back")
OUTPUT_LIMIT = 64 * 1024


class Deployment(models.Model):
    """One deploy trigger and what came of it: who asked, how it was done, what it printed."""

    created = models.DateTimeField(default=timezone.now, db_index=True)
    updated = models.DateTimeField(auto_now=True)
    triggered_by = models.CharField(max_length=20, choices=TRIGGERS)
    actor = models.CharField(
        max_length=200, blank=True, help_text="Operator, API token name, GitHub delivery or command line"
    )
    requested_method = models.CharField(
        max_length=20, choices=METHODS, blank=True, help_text="Empty: the first configured (hook, API, local command)"
    )
    method = models.CharField(max_length=20, choices=METHODS, blank=True, help_text="The method that did the work")
    status = models.CharField(max_length=20, choices=STATUSES, default="queued")
    output = models.TextField(blank=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    render_deploy_id = models.CharField(max_length=100, blank=True)
    # Unique: a replayed GitHub delivery cannot start a second deployment.
    github_delivery = models.CharField(max_length=100, null=True, blank=True, unique=True)
    release = models.PositiveIntegerField(null=True, blank=True, help_text="Release number (releases/<N>)")

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"Deployment #{self.pk} ({self.get_status_display()})"

    @property
    def duration_seconds(self) -> float | None:
        if self.started and self.finished:
            return round((self.finished - self.started).total_seconds(), 1)
        return None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    def claim(self) -> bool:
        """queued -> running; False when another job already took this row."""
        now = timezone.now()
        claimed = Deployment.objects.filter(pk=self.pk, status="queued").update(status="running", started=now)
        if claimed:
            self.status, self.started = "running", now
        return claimed == 1

    def log(self, line: str) -> None:
        """Append a line to the output (already free of secrets) and save it at once."""
        text = f"{self.output}{timezone.localtime():%H:%M:%S} {line.rstrip()}\n"
        self.output = text if len(text) <= OUTPUT_LIMIT else "…" + text[-OUTPUT_LIMIT:]
        if self.pk:  # a first release records its row once its migrations made the table
            self.save(update_fields=["output", "updated"])

    def finish(self, status: str, line: str = "") -> None:
        if line:
            self.log(line)
        self.status, self.finished = status, timezone.now()
        if self.pk:
            self.save(update_fields=["status", "finished", "method", "render_deploy_id", "release", "updated"])

    @classmethod
    def expire_stale(cls, older_than: dt.timedelta) -> int:
        """Rows left running by a job that was killed (worker restart) are failed, saying so."""
        stale = cls.objects.filter(status="running", updated__lt=timezone.now() - older_than)
        return stale.update(
            status="failed",
            finished=timezone.now(),
            output=Concat("output", models.Value("The job running this deployment stopped before it finished.\n")),
        )
