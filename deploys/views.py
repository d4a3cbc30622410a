"""POST /deploys/github/: GitHub's push webhook starts a deployment of DEPLOY_BRANCH."""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from deploys import github, triggers
from deploys.models import Deployment

logger = logging.getLogger(__name__)


def _read_capped(request: HttpRequest) -> bytes | None:
    """The body, or None when it is (or claims to be) over GITHUB_WEBHOOK_MAX_BYTES."""
    cap = settings.GITHUB_WEBHOOK_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if declared > cap:
        return None
    body = request.read(cap + 1)
    return None if len(body) > cap else body


@csrf_exempt
@require_POST
def github_webhook(request: HttpRequest) -> HttpResponse:
    if not settings.GITHUB_WEBHOOK_SECRET:
        return JsonResponse({"error": "GITHUB_WEBHOOK_SECRET is not set: webhooks are refused"}, status=503)
    body = _read_capped(request)
    if body is None:
        return JsonResponse({"error": f"body over {settings.GITHUB_WEBHOOK_MAX_BYTES} bytes"}, status=413)
    delivery = request.headers.get("X-GitHub-Delivery", "")
    if not github.signature_valid(settings.GITHUB_WEBHOOK_SECRET, body, request.headers.get("X-Hub-Signature-256", "")):
        logger.warning("GITHUB: refused delivery %r: missing or invalid signature", delivery[:100])
        return JsonResponse({"error": "missing or invalid X-Hub-Signature-256"}, status=401)
    event = request.headers.get("X-GitHub-Event", "")
    if event == "ping":
        return JsonResponse({"status": "pong", "deploy_branch": settings.DEPLOY_BRANCH})
    if event != "push":
        return JsonResponse({"status": "ignored", "reason": f"event {event or '(none)'} is not handled"}, status=202)
    if not github.DELIVERY_RE.match(delivery):
        return JsonResponse({"error": "missing or malformed X-GitHub-Delivery"}, status=400)
    try:
        payload = json.loads(body)
    except ValueError:
        return JsonResponse({"error": "the body is not JSON"}, status=400)
    if not isinstance(payload, dict):
        return JsonResponse({"error": "the body is not a JSON object"}, status=400)
    return _push(delivery, payload)


def _push(delivery: str, payload: dict[str, object]) -> HttpResponse:
    branch = github.pushed_branch(payload)
    if branch != settings.DEPLOY_BRANCH:
        reason = f"not a push to {settings.DEPLOY_BRANCH}" + (f" (branch {branch})" if branch else "")
        return JsonResponse({"status": "ignored", "reason": reason}, status=202)
    if Deployment.objects.filter(github_delivery=delivery).exists():
        return _replayed(delivery)
    actor = f"GitHub delivery {delivery}: {github.push_summary(payload)}"
    try:
        deployment = triggers.start("github", actor, github_delivery=delivery)
    except IntegrityError:  # the same delivery, at the same moment
        return _replayed(delivery)
    return JsonResponse({"status": deployment.status, "deployment_id": deployment.pk}, status=202)


def _replayed(delivery: str) -> HttpResponse:
    logger.info("GITHUB: delivery %s was already handled: nothing started", delivery)
    return JsonResponse({"status": "duplicate", "reason": "this delivery was already handled"})
