"""The original's two ways to start and stop a Make.com scenario, through the one HTTP module.

- Control webhook (`MAKE_WEBHOOK_CONTROL_URL` + `MAKE_WEBHOOK_API_KEY`): POST JSON
  `{"action": "start"|"stop", "scenario_id": <id>, "api_key": <key>}`; success is HTTP 200.
- Make API (`MAKECOM_API_KEY`): POST `<MAKE_API_BASE_URL>/scenarios/<id>/start|stop`, no body,
  `Authorization: Token <key>` (or `Bearer`, `MAKE_API_AUTH_TYPE`), `X-Organization` when
  `MAKE_API_ORG_ID` is set; success is any 2xx.
The control webhook wins when both are configured. Timeout 15 s, as the original.
"""

from __future__ import annotations

import json

from django.conf import settings

from delivery import http

TIMEOUT_SECONDS = 15


def configured() -> bool:
    return bool(settings.MAKECOM_API_KEY or channel() == "control_webhook")


def channel() -> str:
    if settings.MAKE_WEBHOOK_CONTROL_URL and settings.MAKE_WEBHOOK_API_KEY:
        return "control_webhook"
    return "api"


def request(scenario_id: int, action: str) -> tuple[str, bytes, dict[str, str]]:
    """URL, body and headers of the call that starts or stops a scenario."""
    if channel() == "control_webhook":
        body = {"action": action, "scenario_id": scenario_id, "api_key": settings.MAKE_WEBHOOK_API_KEY}
        return settings.MAKE_WEBHOOK_CONTROL_URL, json.dumps(body).encode(), {"Content-Type": "application/json"}
    headers = {"Authorization": f"{settings.MAKE_API_AUTH_TYPE} {settings.MAKECOM_API_KEY}"}
    if settings.MAKE_API_ORG_ID:
        headers["X-Organization"] = settings.MAKE_API_ORG_ID
    return f"{settings.MAKE_API_BASE_URL}/scenarios/{scenario_id}/{action}", b"", headers


def call(scenario_id: int, action: str) -> http.Response:
    """Raises http.HttpError when no answer came (network, timeout, refused target)."""
    url, body, headers = request(scenario_id, action)
    return http.post(url, body, headers, TIMEOUT_SECONDS)


def succeeded(response: http.Response, via: str) -> bool:
    if via == "control_webhook":
        return response.status_code == 200
    return 200 <= response.status_code < 300
