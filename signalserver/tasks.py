"""django-q2 jobs owned by the project itself."""

from __future__ import annotations

import logging
import os

from django.conf import settings

from signalserver.models import WorkerHeartbeat

logger = logging.getLogger(__name__)


def heartbeat() -> None:
    WorkerHeartbeat.beat(f"qcluster@{settings.HOSTNAME}", settings.HOSTNAME, os.getpid())
    logger.info("HEARTBEAT: alive (host=%s, pid=%d)", settings.HOSTNAME, os.getpid())
