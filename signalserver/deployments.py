"""Operators' deploy controls: the dashboard's Deploy button (with a confirmation step) and
POST /api/deploy_application. Both only record a Deployment and queue its job."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from deploys import triggers
from deploys.models import Deployment
from deploys.secrets import mask
from signalserver.accounts import staff_or_token


class DeployForm(forms.Form):
    method = forms.ChoiceField(
        required=False,
        choices=(("", "Automatic (hook, else API, else local command)"), *triggers.METHODS_TRIGGERED),
    )


def deployment_json(deployment: Deployment) -> dict[str, Any]:
    return {
        "deployment_id": deployment.pk,
        "status": deployment.status,
        "method": deployment.method,
        "triggered_by": deployment.triggered_by,
        "actor": deployment.actor,
        "render_deploy_id": deployment.render_deploy_id,
        "created": deployment.created.isoformat(),
        "started": deployment.started.isoformat() if deployment.started else None,
        "finished": deployment.finished.isoformat() if deployment.finished else None,
        "output": mask(deployment.output),
        "status_url": reverse("api-deployment", args=[deployment.pk]),
    }


def _request_data(request: HttpRequest) -> Any:
    if request.content_type == "application/json":
        try:
            return json.loads(request.body or b"{}")
        except ValueError:
            return None
    return request.POST


@require_POST
@staff_or_token("deploy")
def api_deploy(request: HttpRequest) -> HttpResponse:
    """Queue a deployment; 202 with its id, or 400 naming what is not configured."""
    data = _request_data(request)
    form = DeployForm(data if isinstance(data, dict) or hasattr(data, "getlist") else None)
    if not form.is_valid():
        return JsonResponse({"success": False, "error": form.errors.get_json_data()}, status=400)
    token = getattr(request, "api_token", None)
    actor = f"API token {token.name}" if token else f"{request.user.get_username()} (API)"
    deployment = triggers.start("api", actor, form.cleaned_data["method"])
    ok = deployment.status != "failed"
    message = "Deployment queued." if ok else mask(deployment.output.strip().split(" ", 1)[-1])
    return JsonResponse({"success": ok, "message": message, **deployment_json(deployment)}, status=202 if ok else 400)


@require_GET
@staff_or_token("deploy")
def api_deployment(request: HttpRequest, pk: int) -> HttpResponse:
    return JsonResponse(deployment_json(get_object_or_404(Deployment, pk=pk)))


@login_required
@require_http_methods(["GET", "POST"])
def dashboard_deploy(request: HttpRequest) -> HttpResponse:
    """GET: what a deployment would do, and a confirm button. POST: queue it. Staff only."""
    if not request.user.is_staff:
        raise PermissionDenied("Deploying is for staff operators.")
    form = DeployForm(request.POST if request.method == "POST" else request.GET or None)
    method = form.cleaned_data["method"] if form.is_valid() else ""
    if request.method == "POST" and form.is_valid():
        deployment = triggers.start("dashboard", request.user.get_username(), method)
        if deployment.status == "failed":
            messages.error(request, f"Deployment #{deployment.pk} not started: {mask(deployment.output.strip())}")
        else:
            messages.success(request, f"Deployment #{deployment.pk} queued; its progress shows under Deployments.")
        return HttpResponseRedirect(reverse("dashboard") + "#deployments")
    try:
        plan, problem = triggers.describe_plan(triggers.plan(method)), ""
    except triggers.DeployConfigError as e:
        plan, problem = "", str(e)
    context = {"form": form, "method": method, "plan": plan, "problem": problem}
    return render(request, "deploys/confirm.html", context)
