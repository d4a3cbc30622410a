"""Create the first endpoint and the sending schedule from the original app's variables."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings

from delivery.models import Endpoint, SendingSchedule, new_signing_secret

logger = logging.getLogger(__name__)


def create_first_endpoint(**kwargs: Any) -> Endpoint | None:
    SendingSchedule.load()
    if not settings.LEGACY_ENDPOINT_URL or Endpoint.objects.exists():
        return None
    endpoint = Endpoint.objects.create(
        name="default",
        url=settings.LEGACY_ENDPOINT_URL,
        secret=settings.LEGACY_ENDPOINT_SECRET or new_signing_secret(),
        is_default=True,
        success_rule="json_success",
    )
    logger.info("CFG: webhook endpoint %s created from WEBHOOK_URL", endpoint)
    return endpoint
