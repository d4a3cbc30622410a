"""Deploy settings that cannot work stop the start with a message naming the variable."""

from __future__ import annotations

import pytest

from tests.conftest import manage

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("DEPLOY_CMD", "systemctl restart signalserver ; nginx -s reload", "DEPLOY_CMD is run without a shell"),
        ("RENDER_DEPLOY_CLEAR_CACHE", "yes", "RENDER_DEPLOY_CLEAR_CACHE='yes' must be clear or do_not_clear"),
        ("DEPLOY_CMD_TIMEOUT_SECONDS", "100000", "DEPLOY_CMD_TIMEOUT_SECONDS=100000 is above the maximum"),
    ],
)
def test_an_unusable_deploy_setting_stops_the_start(production_env, name, value, message):
    result = manage(["check"], {**production_env, name: value})
    assert result.returncode != 0 and message in result.stderr


def test_a_deploy_hook_of_another_host_fails_the_system_check(production_env):
    hook = "https://example.com/deploy/srv-abc?key=k3y-v4lue-123"
    result = manage(["check"], {**production_env, "RENDER_DEPLOY_HOOK_URL": hook})
    assert result.returncode != 0
    assert "deploys.E001" in result.stderr and "must start with https://api.render.com/deploy/" in result.stderr
    assert "k3y-v4lue-123" not in result.stderr + result.stdout
