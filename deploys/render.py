"""Render: the deploy hook, the deploys API, and following a deploy until it is live or failed.

Everything goes through delivery.http; every URL or answer shown is masked first.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from django.conf import settings

from delivery import http
from deploys.secrets import mask

logger = logging.getLogger(__name__)

HOOK_TIMEOUT_SECONDS = 15
API_TIMEOUT_SECONDS = 20
ACCEPTED = (200, 201, 202, 204)
LIVE = {"live"}
FAILED = {"build_failed", "update_failed", "pre_deploy_failed", "canceled", "deactivated"}


class RenderError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = mask(message)


@dataclass
class Accepted:
    message: str
    deploy_id: str = ""
    status: str = ""


def hook_prefix() -> str:
    return f"{settings.RENDER_API_BASE_URL}/deploy/"


def hook_problem() -> str:
    """Why the configured deploy hook cannot be used, or ''."""
    if not settings.RENDER_DEPLOY_HOOK_URL:
        return "RENDER_DEPLOY_HOOK_URL is not set"
    if not settings.RENDER_DEPLOY_HOOK_URL.startswith(hook_prefix()):
        return f"RENDER_DEPLOY_HOOK_URL must start with {hook_prefix()} (copy it from the service's settings on Render)"
    return ""


def api_problem() -> str:
    missing = [n for n in ("RENDER_API_KEY", "RENDER_SERVICE_ID") if not getattr(settings, n)]
    return f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set" if missing else ""


def masked_hook() -> str:
    return mask(settings.RENDER_DEPLOY_HOOK_URL)


def _json(response: http.Response) -> dict[str, object]:
    try:
        data = json.loads(response.body or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _reason(response: http.Response) -> str:
    data = _json(response)
    detail = data.get("message") or data.get("error") or response.body[:200].decode(errors="replace").strip()
    return f"HTTP {response.status_code}" + (f": {detail}" if detail else "")


def call_hook() -> Accepted:
    """POST the deploy hook; Render answers with the new deploy's id."""
    url = settings.RENDER_DEPLOY_HOOK_URL
    try:
        response = http.post(url, b"", {}, HOOK_TIMEOUT_SECONDS)
    except http.HttpError as e:
        raise RenderError(f"deploy hook {masked_hook()}: {e.message}") from None
    if response.status_code not in ACCEPTED:
        raise RenderError(f"deploy hook {masked_hook()} answered {_reason(response)}")
    deploy = _json(response).get("deploy")
    deploy_id = str(deploy.get("id", "")) if isinstance(deploy, dict) else ""
    return Accepted(f"Render accepted the deploy hook {masked_hook()} (HTTP {response.status_code})", deploy_id)


def _api_headers() -> dict[str, str]:
    return {
        "Authorization": f"Bearer {settings.RENDER_API_KEY}",
        "Accept": "application/json",
        "Content-Type": "application/json",
    }


def deploys_url(deploy_id: str = "") -> str:
    base = f"{settings.RENDER_API_BASE_URL}/v1/services/{settings.RENDER_SERVICE_ID}/deploys"
    return f"{base}/{deploy_id}" if deploy_id else base


def create_deploy() -> Accepted:
    """POST /v1/services/{id}/deploys with clearCache (and imageUrl for image-based services)."""
    body: dict[str, str] = {"clearCache": settings.RENDER_DEPLOY_CLEAR_CACHE}
    if settings.RENDER_IMAGE_URL:
        body["imageUrl"] = settings.RENDER_IMAGE_URL
    try:
        response = http.post(deploys_url(), json.dumps(body).encode(), _api_headers(), API_TIMEOUT_SECONDS)
    except http.HttpError as e:
        raise RenderError(f"Render API: {e.message}") from None
    if response.status_code not in ACCEPTED:
        raise RenderError(f"Render API error: {_reason(response)}")
    data = _json(response)
    deploy_id = str(data.get("id") or data.get("deployId") or "")
    status = str(data.get("status") or "queued")
    sent = ", ".join(f"{k}={v}" for k, v in body.items())
    return Accepted(f"Render API created deploy {deploy_id or '(no id)'} ({sent}), status {status}", deploy_id, status)


def deploy_status(deploy_id: str) -> str:
    """The deploy's current status on Render (created, build_in_progress, live, build_failed…)."""
    try:
        response = http.get(deploys_url(deploy_id), _api_headers(), API_TIMEOUT_SECONDS)
    except http.HttpError as e:
        raise RenderError(f"Render API: {e.message}") from None
    if response.status_code != 200:
        raise RenderError(f"Render API error reading deploy {deploy_id}: {_reason(response)}")
    return str(_json(response).get("status") or "unknown")
