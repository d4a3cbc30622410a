"""Each deploy path against a local server that answers as Render does, and the local command."""

from __future__ import annotations

import sys
import time

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import CommandError

from deploys import triggers
from deploys.local import alive as running
from deploys.models import Deployment
from tests.conftest import wait_until
from tests.deploys.render_server import API_KEY, HOOK_KEY, SERVICE

pytestmark = pytest.mark.django_db


def deploy(requested: str = "") -> Deployment:
    deployment = triggers.start("cli", "tester", requested)
    deployment.refresh_from_db()
    return deployment


def test_the_hook_is_posted_and_its_key_is_masked_in_the_row(hook):
    deployment = deploy()
    assert deployment.status == "succeeded" and deployment.method == "hook"
    assert hook.paths() == [f"POST /deploy/{SERVICE}?key={HOOK_KEY}"]
    assert deployment.render_deploy_id == "dep-hook"
    assert "?key=***" in deployment.output and HOOK_KEY not in deployment.output
    assert "progress is on Render's dashboard" in deployment.output


def test_a_hook_deploy_is_followed_until_live_when_the_api_is_configured(hook, api):
    deployment = deploy()
    assert deployment.status == "succeeded" and deployment.method == "hook"
    assert hook.paths()[1:] == [f"GET /v1/services/{SERVICE}/deploys/dep-hook"] * 3
    assert "dep-hook: build_in_progress" in deployment.output and "dep-hook: live" in deployment.output
    assert deployment.duration_seconds is not None and deployment.duration_seconds >= 0


def test_a_failing_hook_falls_back_to_the_render_api(hook, api, settings):
    settings.RENDER_IMAGE_URL = "ghcr.io/acme/signalserver:abc123"
    settings.RENDER_DEPLOY_CLEAR_CACHE = "clear"
    hook.hook_replies.append((500, {"message": "hook is down"}))
    deployment = deploy()
    assert deployment.status == "succeeded" and deployment.method == "api"
    assert deployment.render_deploy_id == "dep-api"
    assert "answered HTTP 500: hook is down" in deployment.output
    create = next(c for c in hook.calls if c.path == f"/v1/services/{SERVICE}/deploys")
    assert create.json() == {"clearCache": "clear", "imageUrl": "ghcr.io/acme/signalserver:abc123"}
    assert create.headers["authorization"] == f"Bearer {API_KEY}"
    assert API_KEY not in deployment.output and HOOK_KEY not in deployment.output


def test_a_render_api_error_leaves_a_clear_failed_row(api):
    api.create_replies.append((400, {"message": "imageUrl is required for image-backed services"}))
    deployment = deploy()
    assert deployment.status == "failed" and deployment.method == "api"
    assert "Render API error: HTTP 400: imageUrl is required for image-backed services" in deployment.output
    assert "No deploy method succeeded." in deployment.output


def test_a_wrong_api_key_fails_without_showing_the_key(api, settings):
    settings.RENDER_API_KEY = "rnd_wrong-key-123456"
    deployment = deploy()
    assert deployment.status == "failed"
    assert "HTTP 401: unauthorized" in deployment.output and "rnd_wrong-key-123456" not in deployment.output


def test_a_deploy_that_fails_on_render_fails_here(api):
    api.statuses.clear()
    api.statuses.extend(["build_in_progress", "build_failed"])
    deployment = deploy()
    assert deployment.status == "failed" and deployment.render_deploy_id == "dep-api"
    assert "dep-api: build_failed" in deployment.output


def test_a_deploy_still_building_at_the_deadline_fails_saying_so(api, settings):
    api.statuses.clear()
    api.statuses.append("build_in_progress")
    settings.RENDER_DEPLOY_WAIT_SECONDS = 0.2
    deployment = deploy()
    assert deployment.status == "failed"
    assert "did not report live or failed within 0.2 s (last: build_in_progress)" in deployment.output


def test_a_long_render_deploy_is_followed_by_successive_jobs(api, settings):
    from django_q.models import Task

    settings.Q_TIMEOUT_SECONDS = 61  # each job follows for 1 s, then hands over
    settings.RENDER_DEPLOY_POLL_SECONDS = 0.2
    api.statuses.clear()
    api.statuses.extend(["build_in_progress"] * 12 + ["live"])
    deployment = deploy()
    assert deployment.status == "succeeded" and "dep-api: live" in deployment.output
    assert Task.objects.filter(func="deploys.tasks.follow_render").count() >= 1


def test_an_unreachable_hook_is_a_failure_with_the_reason(render, settings):
    settings.RENDER_DEPLOY_HOOK_URL = f"{render.base_url.rsplit(':', 1)[0]}:1/deploy/{SERVICE}?key={HOOK_KEY}"
    settings.RENDER_API_BASE_URL = render.base_url.rsplit(":", 1)[0] + ":1"
    deployment = deploy()
    assert deployment.status == "failed" and "127.0.0.1:1 refused the connection" in deployment.output
    assert HOOK_KEY not in deployment.output and "key=***" in deployment.output


def test_a_hook_with_a_foreign_prefix_is_a_configuration_error(render, settings):
    settings.RENDER_DEPLOY_HOOK_URL = f"https://example.com/deploy/{SERVICE}?key={HOOK_KEY}"
    deployment = deploy()
    assert deployment.status == "failed" and render.calls == []
    assert f"RENDER_DEPLOY_HOOK_URL must start with {render.base_url}/deploy/" in deployment.output
    [error] = [m for m in checks.run_checks() if m.id == "deploys.E001"]
    assert HOOK_KEY not in error.msg


def test_nothing_configured_says_what_to_set(render):
    deployment = deploy()
    assert deployment.status == "failed"
    assert "set RENDER_DEPLOY_HOOK_URL, or RENDER_API_KEY and RENDER_SERVICE_ID, or DEPLOY_CMD" in deployment.output


def test_a_requested_method_that_is_not_configured_is_refused(hook):
    deployment = deploy("api")
    assert deployment.status == "failed" and "RENDER_API_KEY and RENDER_SERVICE_ID are not set" in deployment.output
    assert hook.calls == []


def test_the_local_command_runs_without_a_shell_and_its_output_is_kept(render, settings, tmp_path):
    script = "import sys; print('deployed', sys.argv[1:]); print('to stderr', file=sys.stderr)"
    settings.DEPLOY_CMD = [sys.executable, "-c", script, "a;b", "$HOME"]
    deployment = deploy()
    assert deployment.status == "succeeded" and deployment.method == "local"
    assert "deployed ['a;b', '$HOME']" in deployment.output and "to stderr" in deployment.output
    assert "Local command exit status 0." in deployment.output


def test_a_failing_local_command_fails_with_its_exit_status(render, settings):
    settings.DEPLOY_CMD = [sys.executable, "-c", "import sys; print('migration failed'); sys.exit(3)"]
    deployment = deploy()
    assert deployment.status == "failed"
    assert "migration failed" in deployment.output and "failed with exit status 3" in deployment.output


def test_a_local_command_past_its_timeout_is_stopped_with_its_children(render, settings, tmp_path):
    pids = tmp_path / "pids"
    code = (
        "import os, subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}'); print('started', flush=True); "
        "time.sleep(60)"
    )
    settings.DEPLOY_CMD, settings.DEPLOY_CMD_TIMEOUT_SECONDS = [sys.executable, "-c", code], 1
    started = time.monotonic()
    deployment = deploy()
    assert time.monotonic() - started < 15
    assert deployment.status == "failed" and "stopped after the 1 s timeout" in deployment.output
    assert "started" in deployment.output
    for pid in map(int, pids.read_text().split()):
        wait_until(lambda pid=pid: not running(pid), timeout=10, message=f"process {pid} stopped")


def test_a_missing_program_is_a_clear_failure(render, settings):
    settings.DEPLOY_CMD = ["/nonexistent/deploy-script"]
    deployment = deploy()
    assert deployment.status == "failed" and "cannot start /nonexistent/deploy-script" in deployment.output


def test_a_job_never_runs_a_deployment_twice(hook):
    deployment = deploy()
    from deploys.tasks import run_deployment

    assert run_deployment(deployment.pk) == "already taken"
    assert len(hook.calls) == 1


def test_a_deployment_left_running_by_a_killed_job_is_failed(hook, settings):
    import datetime as dt

    from django.utils import timezone

    stale = Deployment.objects.create(triggered_by="cli", status="running", started=timezone.now())
    Deployment.objects.filter(pk=stale.pk).update(updated=timezone.now() - dt.timedelta(hours=1))
    deploy()
    stale.refresh_from_db()
    assert stale.status == "failed" and "stopped before it finished" in stale.output


def test_the_deploy_command_waits_and_prints_the_output(hook, capsys):
    call_command("deploy", "--wait")
    out = capsys.readouterr().out
    assert "queued" in out and "?key=***" in out and "Succeeded" in out and HOOK_KEY not in out
    assert Deployment.objects.get().triggered_by == "cli"
    assert "manage.py deploy --wait" in Deployment.objects.get().actor


def test_the_deploy_command_exits_non_zero_on_failure(api):
    api.create_replies.append((503, {"message": "maintenance"}))
    with pytest.raises(CommandError, match="failed"):
        call_command("deploy", "--method", "api", "--wait")


def test_the_deploy_command_refuses_at_once_when_nothing_is_configured(render):
    with pytest.raises(CommandError, match="nothing to deploy with"):
        call_command("deploy")
