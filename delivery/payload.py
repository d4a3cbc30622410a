"""The webhook body: the original app's keys and omission rules (reference §3.1)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings

from delivery import r2
from delivery.models import Delivery, SendingSchedule
from delivery.schedule import window_strings


def build(delivery: Delivery, schedule: SendingSchedule, now: dt.datetime) -> dict[str, Any]:
    email = delivery.email
    text = email.text or ""
    payload: dict[str, Any] = {
        "microsoft_graph_email_id": email.email_id,
        "subject": email.subject or "",
        "receivedDateTime": email.date_header,
        "sender_address": email.sender_raw or email.sender,
        "sender_email": email.sender,
        "bodyPreview": text[:200],
    }
    if delivery.endpoint.include_email_content:
        payload["email_content"] = text
    if email.detector:
        payload["detector"] = email.detector
    if email.detector == "recadrage" and email.delivery_time:
        payload["delivery_time"] = email.delivery_time
    payload.update(window_strings(schedule, now, email.detector, email.urgent))
    found = r2.enrich(email.pk, email.links) if settings.R2_FETCH_ENABLED else email.links
    links = [_link(link) for link in found]
    if links:
        payload["delivery_links"] = links
    if delivery.routing_rule:
        payload["routing_rule"] = delivery.routing_rule
    if email.source == "gmail_push":
        payload["source"] = "gmail_push"  # as the original's push ingress sent it
    return payload


def _link(link: dict[str, str]) -> dict[str, str]:
    item = {"provider": link["provider"], "raw_url": link["raw_url"]}
    if settings.R2_FETCH_ENABLED:
        item["direct_url"] = link.get("direct_url") or link["raw_url"]
    for key in ("r2_url", "original_filename"):
        if link.get(key):
            item[key] = link[key]
    return item
