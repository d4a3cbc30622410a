"""System checks for rules that span several settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register


@register()
def check_q_cluster(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    conf = settings.Q_CLUSTER
    if conf["timeout"] >= conf["retry"]:
        return [Error("Q_CLUSTER timeout must be below retry, or a slow job runs twice", id="signalserver.E001")]
    return []


@register(deploy=True)
def check_embedded_database(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    if settings.REDIS_URL and not settings.DATABASE_URL:
        return [
            Warning(
                "REDIS_URL is set but DATABASE_URL is not: several containers cannot share the SQLite file",
                id="signalserver.W001",
            )
        ]
    return []
