from __future__ import annotations

from django.db import models
from django.utils import timezone


class WorkerHeartbeat(models.Model):
    """Last sign of life of each job cluster, shared by every container using the database."""

    name = models.CharField(max_length=200, unique=True)
    host = models.CharField(max_length=255, blank=True)
    pid = models.IntegerField(null=True)
    seen_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} ({self.host} pid={self.pid})"

    @classmethod
    def beat(cls, name: str, host: str, pid: int) -> None:
        cls.objects.update_or_create(name=name, defaults={"host": host, "pid": pid, "seen_at": timezone.now()})

    @classmethod
    def latest(cls) -> WorkerHeartbeat | None:
        return cls.objects.order_by("-seen_at").first()
