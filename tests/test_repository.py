"""The repository's own checks: its workflows, its security configuration, its scripts, its suite rules."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BIN = Path(sys.executable).parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
pytestmark = pytest.mark.only_on("sqlite", "checks of the repository, not of a database")


def test_the_workflows_are_split_by_purpose():
    assert [w.name for w in WORKFLOWS] == ["ci.yml", "image.yml", "security.yml"]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_every_workflow_passes_actionlint(workflow):
    # actionlint also runs shellcheck on `run:` scripts when it is installed (make test installs it).
    result = subprocess.run([str(BIN / "actionlint"), str(workflow)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_bandit_passes_with_the_checked_in_configuration():
    command = [
        str(BIN / "bandit"),
        "-c",
        "pyproject.toml",
        "-q",
        "-r",
        "signalserver",
        "mail",
        "delivery",
        "deploys",
        "scenarios",
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_security_workflow_runs_bandit_with_that_configuration():
    assert (
        "bandit -c pyproject.toml -r signalserver mail delivery deploys scenarios"
        in (ROOT / ".github/workflows/security.yml").read_text()
    )


def test_the_test_servers_scripts_are_in_the_repository_and_pass_shellcheck():
    scripts = [ROOT / "scripts" / name for name in ("imap-test-server", "container-check", "test")]
    assert all(os.access(script, os.X_OK) for script in scripts)
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (make test installs it)")
    result = subprocess.run([shellcheck, "-S", "warning", *map(str, scripts)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_a_skip_is_a_failure_where_every_test_must_run(tmp_path):
    probe = tmp_path / "test_probe.py"
    probe.write_text("import pytest\n\ndef test_needs_a_server():\n    pytest.skip('no server here')\n")
    command = [sys.executable, "-m", "pytest", "-c", "pyproject.toml", "--rootdir", str(ROOT)]
    command += ["-p", "tests.conftest", "-q", str(probe)]
    # Its own artifacts directory: the run log of this session must not be truncated by the inner one.
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": "",
        "REDIS_URL": "",
        "TEST_ARTIFACTS_DIR": str(tmp_path),
    }
    strict = subprocess.run(command, cwd=ROOT, env={**env, "REQUIRE_ALL_TESTS": "true"}, capture_output=True, text=True)
    assert (
        strict.returncode == 1
        and "REQUIRE_ALL_TESTS is set so every test must run: Skipped: no server here" in strict.stdout
    )
    relaxed = subprocess.run(command, cwd=ROOT, env={**env, "REQUIRE_ALL_TESTS": ""}, capture_output=True, text=True)
    assert relaxed.returncode == 0 and "1 skipped" in relaxed.stdout


def test_the_ci_workflow_requires_every_test_to_run():
    assert 'REQUIRE_ALL_TESTS: "true"' in (ROOT / ".github/workflows/ci.yml").read_text()
