"""R2 offload through a local Worker double that honours the contract of reference §4.2."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from delivery import r2
from delivery.models import Delivery, LinkTransfer, StoredLink
from delivery.outbox import plan
from delivery.tasks import send_due
from signalserver.models import ApiToken
from tests.delivery.conftest import make_email
from tests.delivery.receiver import Receiver, Reply

pytestmark = pytest.mark.django_db
FOLDER = "https://www.dropbox.com/scl/fo/abc/AAb?rlkey=k1&dl=0"


@pytest.fixture
def worker(settings, local_targets):
    with Receiver() as w:
        settings.R2_FETCH_ENABLED = True
        settings.R2_FETCH_ENDPOINT = w.url.replace("/hook", "/fetch")
        settings.R2_FETCH_TOKEN = "worker-token"
        settings.R2_BUCKET_NAME = "render-signal-media"
        yield w


def ok(name: str = "photos.zip", key: str = "k") -> Reply:
    return Reply(200, {"success": True, "r2_url": f"https://media.example/{key}", "original_filename": f" {name} "})


def email_with_links(box, *urls: str):
    links = [{"provider": "dropbox" if "dropbox" in u else "fromsmash", "raw_url": u} for u in urls]
    return make_email(box, links=links, text=" ".join(urls))


def test_a_successful_copy_adds_r2_url_and_filename(box, endpoint, schedule, receiver, worker, caplog):
    worker.then(ok())
    email = email_with_links(box, FOLDER)
    plan(email)
    send_due()
    [call] = worker.received
    assert call.headers["x-r2-fetch-token"] == "worker-token"
    body = call.json()
    assert body["source_url"] == "https://www.dropbox.com/scl/fo/abc/AAb?dl=1&rlkey=k1"
    assert body["object_key"].startswith("dropbox/") and body["object_key"].endswith("/file")
    assert (body["bucket"], body["provider"], body["email_id"]) == ("render-signal-media", "dropbox", email.email_id)
    assert receiver.received[0].json()["delivery_links"] == [
        {
            "provider": "dropbox",
            "raw_url": FOLDER,
            "direct_url": FOLDER,
            "r2_url": "https://media.example/k",
            "original_filename": "photos.zip",
        }
    ]
    assert StoredLink.objects.get().source_url == body["source_url"]
    assert "R2_TRANSFER: success" in caplog.text


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(401, {"success": False, "error": "Unauthorized"}), "HTTP 401: Unauthorized"),
        (Reply(502, {"success": False, "error": "Source returned HTML preview"}), "HTML preview"),
        (Reply(200, {"success": True}), "without r2_url"),
        (Reply(200, b"<html>oops</html>"), "HTTP 200"),
    ],
)
def test_any_worker_failure_keeps_the_source_links_and_the_webhook_goes(
    box, endpoint, schedule, receiver, worker, caplog, reply, error
):
    worker.then(reply)
    plan(email_with_links(box, FOLDER))
    send_due()
    assert receiver.received[0].json()["delivery_links"] == [
        {"provider": "dropbox", "raw_url": FOLDER, "direct_url": FOLDER}
    ]
    assert error in LinkTransfer.objects.get().error
    assert "R2_TRANSFER: failed" in caplog.text
    assert Delivery.objects.get().status == "delivered"


def test_a_worker_timeout_falls_back_too(box, endpoint, schedule, receiver, worker, monkeypatch):
    monkeypatch.setattr(r2, "timeout_for", lambda provider, url: 1)
    worker.then(Reply(delay=3))
    plan(email_with_links(box, "https://fromsmash.com/Slow1"))
    send_due()
    assert "Timed out after 1 s" in LinkTransfer.objects.get().error
    assert "r2_url" not in receiver.received[0].json()["delivery_links"][0]


def test_a_known_link_is_reused_without_a_new_transfer(box, endpoint, schedule, receiver, worker):
    StoredLink.objects.create(
        source_url=r2.normalize_url(FOLDER, "dropbox"), r2_url="https://media.example/old", provider="dropbox"
    )
    plan(email_with_links(box, FOLDER))
    send_due()
    assert worker.received == []
    assert receiver.received[0].json()["delivery_links"][0]["r2_url"] == "https://media.example/old"


def test_links_are_offloaded_each_with_its_own_job(box, endpoint, schedule, receiver, worker):
    worker.then(ok("a.zip", "a"), ok("b.zip", "b"))
    plan(email_with_links(box, FOLDER, "https://fromsmash.com/Second2"))
    send_due()
    assert [c.json()["provider"] for c in worker.received] == ["dropbox", "fromsmash"]
    links = receiver.received[0].json()["delivery_links"]
    assert [link["r2_url"] for link in links] == ["https://media.example/a", "https://media.example/b"]


def test_upload_pages_and_other_hosts_are_not_offloaded(box, endpoint, schedule, receiver, worker):
    email = make_email(
        box,
        links=[
            {"provider": "dropbox", "raw_url": "https://www.dropbox.com/request/AbC"},
            {"provider": "google_drive", "raw_url": "https://drive.google.com/file/d/1/view"},
        ],
    )
    plan(email)
    send_due()
    assert worker.received == [] and len(receiver.received) == 1


def test_timeouts_and_object_keys_follow_the_contract():
    assert r2.timeout_for("dropbox", "https://www.dropbox.com/scl/fo/a/b?dl=1") == 120
    assert r2.timeout_for("dropbox", "https://www.dropbox.com/s/a/b.jpg?dl=1") == 15
    key = r2.object_key("dropbox", "https://www.dropbox.com/s/a/photo%20one.jpg?dl=1")
    assert key.split("/")[0] == "dropbox" and key.endswith("/photo one.jpg") and len(key.split("/")) == 4


def test_import_links_reads_the_original_file(tmp_path, db):
    entries = [
        {
            "source_url": FOLDER,
            "r2_url": "https://media.example/1",
            "provider": "dropbox",
            "created_at": "2026-01-10T10:00:00Z",
            "original_filename": "a.zip",
        },
        {"source_url": FOLDER, "r2_url": "https://media.example/1", "provider": "dropbox"},
        {"r2_url": "incomplete"},
    ]
    path = tmp_path / "webhook_links.json"
    path.write_text(json.dumps(entries))
    call_command("import_links", str(path))
    link = StoredLink.objects.get()
    assert link.source_url == "https://www.dropbox.com/scl/fo/abc/AAb?dl=1&rlkey=k1"
    assert (link.original_filename, link.created.year) == ("a.zip", 2026)


def test_the_post_deploy_check_offloads_one_url(admin_client, worker):
    worker.then(ok())
    response = admin_client.post("/api/test-r2", {"url": FOLDER})
    assert response.json() == {"r2_url": "https://media.example/k", "original_filename": "photos.zip"}
    worker.then(Reply(401, {"success": False, "error": "Unauthorized"}))
    failed = admin_client.post("/api/test-r2", {"url": FOLDER})
    assert failed.status_code == 502 and "401" in failed.json()["error"]


def test_the_post_deploy_check_needs_an_operator_or_a_token(client, worker):
    refused = client.post("/api/test-r2", {"url": FOLDER})
    assert refused.status_code == 401 and "Bearer" in refused.json()["error"]


def test_the_post_deploy_check_accepts_an_api_token_with_the_test_r2_scope(client, worker):
    _, token = ApiToken.issue("ci", ["test_r2"])
    worker.then(ok())
    response = client.post("/api/test-r2", {"url": FOLDER}, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert response.json()["r2_url"] == "https://media.example/k"
    assert worker.received[0].json()["source_url"] == "https://www.dropbox.com/scl/fo/abc/AAb?dl=1&rlkey=k1"


def test_the_post_deploy_check_refuses_a_token_without_the_scope_or_revoked(client, worker):
    _, deploy_token = ApiToken.issue("deployer", ["deploy"])
    revoked, revoked_token = ApiToken.issue("old", ["test_r2"])
    revoked.revoked_at = revoked.created
    revoked.save()
    for token in (deploy_token, revoked_token, "sst_not-a-real-token", "no-prefix"):
        response = client.post("/api/test-r2", {"url": FOLDER}, HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 401, token
    assert worker.received == []


def test_the_post_deploy_check_from_a_browser_session_needs_csrf(admin_user, worker):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    assert browser.post("/api/test-r2", {"url": FOLDER}).status_code == 403
    assert worker.received == []
