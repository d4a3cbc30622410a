"""django-q2 jobs of the deploys app."""

from __future__ import annotations

import datetime as dt

from django.conf import settings

from deploys import triggers
from deploys.models import Deployment


def run_deployment(deployment_id: int) -> str:
    # A row left running by a killed job would otherwise look busy forever.
    Deployment.expire_stale(dt.timedelta(seconds=settings.Q_TIMEOUT_SECONDS + 60))
    deployment = Deployment.objects.filter(pk=deployment_id).first()
    if deployment is None or not deployment.claim():
        return "already taken"
    triggers.run(deployment)
    return deployment.status


def follow_render(deployment_id: int) -> str:
    deployment = Deployment.objects.filter(pk=deployment_id, status="running").first()
    if deployment is None:
        return "not running"
    triggers.follow(deployment)
    return deployment.status
