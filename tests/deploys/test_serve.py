"""`serve` from a fresh checkout with production settings: static files are collected, never a 500."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import requests
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import User
from django.core.management import call_command

from tests.conftest import child_database_env, free_port, wait_for_http
from tests.deploys.checkout import fresh_checkout

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"
STATIC_STORAGE = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}


def start_serve(checkout, production_env, stop_process, **extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **production_env,
        **child_database_env(),
        "PYTHONPATH": str(checkout),
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "GUNICORN_WORKERS": "1",
        "SIGNALSERVER_ROLE": "web",
        **extra,
    }
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "serve"],
        cwd=checkout,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    stop_process.append(proc)
    return proc, f"http://127.0.0.1:{port}"


class Browser:
    """Behind a TLS proxy, as in production: secure cookies are kept by hand over plain http."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies: dict[str, str] = {}
        self.headers = {"X-Forwarded-Proto": "https", "Origin": base.replace("http:", "https:")}

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        headers = {**self.headers, "Referer": self.headers["Origin"] + path, "Cookie": cookie}
        response = requests.request(
            method, self.base + path, headers=headers, allow_redirects=False, timeout=10, **kwargs
        )
        self.cookies.update(response.cookies.get_dict())
        return response


def test_serve_collects_static_files_in_a_fresh_checkout_and_an_operator_signs_in(
    tmp_path, production_env, stop_process
):
    # Hashed as production settings verify it (the test settings hash with MD5).
    User.objects.create(
        username="alice", is_staff=True, password=PBKDF2PasswordHasher().encode(PASSWORD, "s4lt4ndp3pp3r")
    )
    checkout = fresh_checkout(tmp_path / "checkout")
    assert not (checkout / "staticfiles").exists()
    proc, base = start_serve(checkout, production_env, stop_process, ALLOWED_HOSTS="127.0.0.1")
    wait_for_http(base + "/health/live", timeout=120, proc=proc)
    browser = Browser(base)
    for page in ("/login", "/admin/login/"):
        assert browser.request("GET", page).status_code == 200, page
    login = browser.request("GET", "/login")
    stylesheet = re.search(r'href="(/static/signalserver/app\.[0-9a-f]{12}\.css)"', login.text)
    assert stylesheet, "the page names the hashed stylesheet from the manifest"
    assert browser.request("GET", stylesheet.group(1)).status_code == 200
    [token] = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
    form = {"csrfmiddlewaretoken": token, "username": "alice", "password": PASSWORD}
    signed_in = browser.request("POST", "/login", data=form)
    assert signed_in.status_code == 302 and signed_in.headers["Location"] == "/"
    dashboard = browser.request("GET", "/")
    assert dashboard.status_code == 200 and "Sign out (alice)" in dashboard.text
    proc.terminate()
    output = proc.communicate(timeout=40)[0].decode()
    assert "Static files are out of date (no manifest at" in output


def test_serve_refuses_to_start_when_static_files_cannot_be_collected(tmp_path, production_env, stop_process):
    checkout = fresh_checkout(tmp_path / "checkout")
    (checkout / "staticfiles").write_text("not a directory")
    proc, _ = start_serve(checkout, production_env, stop_process)
    output = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode != 0
    assert "cannot be collected into" in output and "python manage.py collectstatic --noinput" in output


def test_serve_collects_again_when_a_static_file_changed(tmp_path, settings):
    from signalserver.management.commands.serve import static_files_problem

    settings.DEBUG = False
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    assert static_files_problem().startswith("no manifest at")
    call_command("collectstatic", interactive=False, verbosity=0)
    assert static_files_problem() == ""
    css = settings.BASE_DIR / "signalserver" / "static" / "signalserver" / "app.css"
    manifest = tmp_path / "static" / "staticfiles.json"
    os.utime(manifest, (manifest.stat().st_mtime - 10, manifest.stat().st_mtime - 10))
    os.utime(css)
    assert static_files_problem() == "signalserver/app.css changed since it was collected"
