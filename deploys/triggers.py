"""Deploy triggers: which method to use, the Deployment row, and the job that does the work.

Order (the original's): the Render deploy hook; if it is not set, or fails, the Render API;
the local DEPLOY_CMD only when neither Render method is configured (a failed Render call
never falls through to a command on this machine). A request only creates the row and
queues `deploys.tasks.run_deployment`.
"""

from __future__ import annotations

import logging
import shlex
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from deploys import local, render
from deploys.models import METHODS, Deployment
from deploys.secrets import mask

logger = logging.getLogger(__name__)

METHOD_LABELS = dict(METHODS)
# What a trigger may ask for (a release is made by the release command).
METHODS_TRIGGERED = [(k, v) for k, v in METHODS if k != "release"]


class DeployConfigError(Exception):
    pass


def _problem(method: str) -> str:
    if method == "hook":
        return render.hook_problem()
    if method == "api":
        return render.api_problem()
    if method == "local":
        return "" if settings.DEPLOY_CMD else "DEPLOY_CMD is not set"
    return f"unknown deploy method {method!r}"


def plan(requested: str = "") -> list[str]:
    """The methods a deployment will try, in order; DeployConfigError says what is missing."""
    if requested:
        if problem := _problem(requested):
            raise DeployConfigError(problem)
        return [requested]
    methods = []
    if settings.RENDER_DEPLOY_HOOK_URL:
        if problem := render.hook_problem():
            raise DeployConfigError(problem)
        methods.append("hook")
    if not render.api_problem():
        methods.append("api")
    if not methods and settings.DEPLOY_CMD:
        methods.append("local")
    if not methods:
        raise DeployConfigError(
            "nothing to deploy with: set RENDER_DEPLOY_HOOK_URL, or RENDER_API_KEY and RENDER_SERVICE_ID, or DEPLOY_CMD"
        )
    return methods


def describe_plan(methods: list[str]) -> str:
    shown = {
        "hook": f"Render deploy hook {render.masked_hook()}",
        "local": "local command " + shlex.join(settings.DEPLOY_CMD),
    }
    return ", else ".join(mask(shown.get(m, METHOD_LABELS[m])) for m in methods)


def start(triggered_by: str, actor: str, requested_method: str = "", github_delivery: str | None = None) -> Deployment:
    """Record a deployment and queue the job that runs it. A configuration problem is recorded
    as a failed row at once. IntegrityError: this GitHub delivery was seen before."""
    with transaction.atomic():
        deployment = Deployment.objects.create(
            triggered_by=triggered_by,
            actor=actor[:200],
            requested_method=requested_method,
            github_delivery=github_delivery,
        )
    try:
        methods = plan(requested_method)
    except DeployConfigError as e:
        logger.warning("DEPLOY: #%s by %s refused: %s", deployment.pk, actor, e)
        deployment.finish("failed", f"Not started: {e}")
        return deployment
    logger.info("DEPLOY: #%s queued by %s (%s)", deployment.pk, actor, triggered_by)
    deployment.log(f"Queued by {actor}: {describe_plan(methods)}")
    async_task("deploys.tasks.run_deployment", deployment.pk, task_name=f"deploy #{deployment.pk}")
    return deployment


def run(deployment: Deployment) -> None:
    """Try each planned method until one is accepted; follow a Render deploy when the API can."""
    try:
        methods = plan(deployment.requested_method)
    except DeployConfigError as e:
        deployment.finish("failed", f"Not started: {e}")
        return
    for method in methods:
        deployment.method = method
        if method == "local":
            run_local(deployment)
            return
        try:
            accepted = render.create_deploy() if method == "api" else render.call_hook()
        except render.RenderError as e:
            logger.warning("DEPLOY: #%s %s failed: %s", deployment.pk, METHOD_LABELS[method], e.message)
            deployment.log(e.message)
            continue
        deployment.render_deploy_id = accepted.deploy_id
        deployment.save(update_fields=["method", "render_deploy_id", "updated"])
        deployment.log(accepted.message)
        after_render_accepted(deployment)
        return
    deployment.finish("failed", "No deploy method succeeded.")


def after_render_accepted(deployment: Deployment) -> None:
    if not deployment.render_deploy_id or render.api_problem() or not settings.RENDER_DEPLOY_WAIT_SECONDS:
        why = "no deploy id to follow" if not deployment.render_deploy_id else "following needs the Render API"
        deployment.finish("succeeded", f"Render has the deploy; its progress is on Render's dashboard ({why}).")
        logger.info("DEPLOY: #%s accepted by Render", deployment.pk)
        return
    follow(deployment)


def follow(deployment: Deployment) -> None:
    """Poll the deploy until live or failed. A job polls for at most its own timeout's worth,
    then hands over to a new job; the whole wait is capped by RENDER_DEPLOY_WAIT_SECONDS."""
    started = deployment.started or timezone.now()
    deadline = started.timestamp() + settings.RENDER_DEPLOY_WAIT_SECONDS
    hand_over_at = time.time() + max(1, settings.Q_TIMEOUT_SECONDS - 60)
    last = ""
    while time.time() < deadline:
        try:
            status = render.deploy_status(deployment.render_deploy_id)
        except render.RenderError as e:
            status = f"unknown ({e.message})"
        if status != last:
            deployment.log(f"Render deploy {deployment.render_deploy_id}: {status}")
            last = status
        if status in render.LIVE | render.FAILED:
            final = "succeeded" if status in render.LIVE else "failed"
            logger.info("DEPLOY: #%s Render deploy %s", deployment.pk, status)
            deployment.finish(final)
            return
        if time.time() + settings.RENDER_DEPLOY_POLL_SECONDS > hand_over_at:
            deployment.save(update_fields=["updated"])
            async_task("deploys.tasks.follow_render", deployment.pk, task_name=f"follow deploy #{deployment.pk}")
            return
        time.sleep(settings.RENDER_DEPLOY_POLL_SECONDS)
    deployment.finish(
        "failed",
        f"Render did not report live or failed within {settings.RENDER_DEPLOY_WAIT_SECONDS} s (last: {last});"
        " see the deploy on Render's dashboard.",
    )


def run_local(deployment: Deployment) -> None:
    argv, timeout = settings.DEPLOY_CMD, settings.DEPLOY_CMD_TIMEOUT_SECONDS
    deployment.log(mask("$ " + shlex.join(argv)))
    result = local.run(argv, timeout)
    if result.output:
        deployment.log(mask(result.output))
    outcome = local.describe(result, timeout)
    logger.info("DEPLOY: #%s local command %s", deployment.pk, outcome)
    deployment.finish("succeeded" if result.ok else "failed", f"Local command {outcome}.")
