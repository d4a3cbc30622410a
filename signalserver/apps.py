from __future__ import annotations

import logging
import os
from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _record_cluster_start(sender: Any, proc_name: str, **kwargs: Any) -> None:
    # A worker process just spawned: count it as a heartbeat so /health turns green at
    # once instead of after the first scheduled beat (the scheduler runs every 30 s).
    from django.conf import settings

    from signalserver.models import WorkerHeartbeat

    WorkerHeartbeat.beat(f"qcluster@{settings.HOSTNAME}", settings.HOSTNAME, os.getpid())


class SignalserverConfig(AppConfig):
    name = "signalserver"
    verbose_name = "signalserver"

    def ready(self) -> None:
        # Python warnings go through logging too, so production prints nothing but JSON lines.
        logging.captureWarnings(True)
        from django_q.signals import post_spawn

        from signalserver import checks  # noqa: F401  (registers system checks)
        from signalserver.schedules import declare_schedules

        post_migrate.connect(declare_schedules, sender=self)
        post_spawn.connect(_record_cluster_start, dispatch_uid="signalserver-cluster-start")
