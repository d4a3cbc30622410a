"""import_legacy_config: the original's documents (reference §6.2) become the settings that hold them now."""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.management import CommandError, call_command

from delivery.models import Endpoint, RoutingRule, RuleCondition, SendingSchedule
from mail.models import GmailIngress, Mailbox
from signalserver.legacy import values
from signalserver.legacy.sources import masked_redis_url
from tests.conftest import free_port, wait_until

pytestmark = pytest.mark.django_db

DEBUG_DIR = Path(__file__).parent / "legacy_debug"
OLD_URL = "https://old-receiver.kidpixel.fr/hook"
RECEIVER = "https://webhook.kidpixel.fr/index.php"
MAKE_HOOK = "https://hook.eu2.make.com/abc123token"


@pytest.fixture(autouse=True)
def as_after_migrate(settings) -> None:
    """What `migrate` made from the original's environment: a mailbox and the WEBHOOK_URL endpoint."""
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True  # no DNS lookups of the documents' hosts
    settings.LEGACY_ENDPOINT_URL = OLD_URL
    settings.ALLOW_CUSTOM_WEBHOOK_WITHOUT_LINKS = False
    Mailbox.objects.create(name="default", host="imap.atelier.example", username="orders", password="pw")
    Endpoint.objects.create(name="default", url=OLD_URL, is_default=True, success_rule="json_success")


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("import_legacy_config", *args, stdout=out)
    return out.getvalue()


def snapshot() -> dict[str, Any]:
    return {
        "schedule": list(SendingSchedule.objects.values()),
        "endpoints": list(Endpoint.objects.order_by("pk").values()),
        "mailboxes": [{k: v for k, v in row.items() if k != "password"} for row in Mailbox.objects.values()],
        "rules": list(RoutingRule.objects.order_by("pk").values()),
        "conditions": list(RuleCondition.objects.order_by("pk").values()),
        "ingress": list(GmailIngress.objects.values()),
    }


def documents_dir(tmp_path: Path, **replaced: Any) -> Path:
    """A copy of the full set of documents, some of them replaced (None removes one)."""
    target = tmp_path / "debug"
    shutil.copytree(DEBUG_DIR, target)
    for name, content in replaced.items():
        path = target / f"{name}.json"
        if content is None:
            path.unlink()
        else:
            path.write_text(content if isinstance(content, str) else json.dumps(content))
    return target


def test_a_full_set_is_imported_verified_and_a_second_run_changes_nothing():
    output = run("--from-dir", str(DEBUG_DIR), "--verify")
    assert "Verify: OK" in output

    schedule = SendingSchedule.load()
    # "false" as text was true for the original (Python truthiness): sending stays on, and it says so.
    assert schedule.sending_enabled is True
    assert "webhook_sending_enabled = 'false' is text, not true/false: taken as on" in output
    assert (schedule.window_start, schedule.window_end) == ("09h30", "19:00")
    assert schedule.absence_days == "saturday,sunday"

    endpoint = Endpoint.objects.get(name="default")
    assert (endpoint.url, endpoint.timeout_seconds, endpoint.rate_limit_per_hour) == (RECEIVER, 45, 12)
    assert GmailIngress.load().enabled is False

    box = Mailbox.objects.get()
    assert box.active_days == "0,1,2,3,4"
    assert (box.active_start, box.active_end) == (dt.time(8), dt.time(20))
    assert box.allowed_sender_list() == ["missions@media-solution.example", "planning@agence.example"]
    assert (box.subject_group_dedup, box.subject_group_monthly, box.enabled) == (True, True, True)
    assert (box.vacation_start, box.vacation_end) == (dt.date(2026, 8, 1), dt.date(2026, 8, 15))

    rules = list(RoutingRule.objects.order_by("order"))
    assert [(r.name, r.order, r.enabled, r.priority, r.stop_processing) for r in rules] == [
        ("Urgences", 1, True, "high", True),
        ("Agence", 2, True, "normal", False),
        ("Rule 3", 3, True, "normal", False),
    ]
    assert [r.endpoint.url for r in rules] == [MAKE_HOOK, RECEIVER, "https://hook.eu2.make.com/def456token"]
    assert rules[1].endpoint == endpoint  # the rule to the default receiver reuses its endpoint
    assert rules[0].endpoint.success_rule == "2xx"
    conditions = [(c.field, c.operator, c.value, c.case_sensitive) for c in rules[1].conditions.order_by("pk")]
    assert conditions == [
        ("sender", "equals", "planning@agence.example", True),
        ("body", "contains", "tarifs habituels", False),
    ]

    for reported in (
        "magic_link_tokens (2 link(s)): not imported: the original kept them in clear, so the move revokes them",
        "webhook_config.webhook_ssl_verify = false: signalserver always verifies TLS certificates",
        "webhook_config.webhook_delivery_mode = form",
        "webhook_config.absence_pause_days 6, dimanche: not weekday names",
        "webhook_config.recadrage_webhook_url: obsolete in the original already",
        "processing_prefs retry_count = 2, retry_delay_sec = 5",
        "processing_prefs.exclude_keywords = ['annulation', ' devis ']: the original's live flow never applied it",
        "runtime_flags.allow_custom_webhook_without_links = 'false': set ALLOW_CUSTOM_WEBHOOK_WITHOUT_LINKS=true",
        "polling_config.active_days entries 9, 'x'",
        "polling_config.sender_of_interest_for_polling entries not-an-address",
        "webhook_logs.json: webhook history is not imported",
        "webhook_time_window.json",
    ):
        assert reported in output
    assert "conditions[0].case_sensitive = 'false' is text" in output
    assert "abc123token" not in output  # webhook URLs are shown without their paths

    before = snapshot()
    second = run("--from-dir", str(DEBUG_DIR), "--verify")
    assert "No changes: the settings already match the documents." in second and "Verify: OK" in second
    assert snapshot() == before


def test_a_dry_run_lists_the_changes_and_writes_nothing():
    before = snapshot()
    output = run("--from-dir", str(DEBUG_DIR), "--dry-run")
    assert "Would change:" in output
    assert "Sending schedule: window_start (empty) → '09h30'" in output
    assert "Endpoint default: url https://old-receiver.kidpixel.fr/… → https://webhook.kidpixel.fr/…" in output
    assert "Routing rule 'Urgences': created" in output
    assert "nothing was written" in output
    assert snapshot() == before


def test_verify_fails_while_the_settings_differ_from_the_documents():
    with pytest.raises(CommandError, match=r"Verify failed: \d+ difference") as failed:
        run("--from-dir", str(DEBUG_DIR), "--dry-run", "--verify")
    assert failed.value.returncode == 1
    run("--from-dir", str(DEBUG_DIR))
    assert "Verify: OK" in run("--from-dir", str(DEBUG_DIR), "--dry-run", "--verify")
    Mailbox.objects.update(enabled=False)  # an operator changes something the documents hold
    with pytest.raises(CommandError, match="1 difference"):
        run("--from-dir", str(DEBUG_DIR), "--dry-run", "--verify")


@pytest.fixture
def original_redis(tmp_path: Path) -> Iterator[tuple[redis.Redis, str, str]]:
    """The original's Redis store: the same documents under a prefix of its own, on a Redis server
    of the test's own (the tests' Redis is flushed by each test of a pass that may run alongside)."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    command = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([*command, "--dir", str(tmp_path)], stdout=subprocess.DEVNULL)
    try:
        yield from _documents_on(f"redis://127.0.0.1:{port}/0")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _documents_on(url: str) -> Iterator[tuple[redis.Redis, str, str]]:
    client = redis.Redis.from_url(url)
    wait_until(lambda: _answers(client), timeout=10, message=f"Redis at {url}")
    prefix = f"test-{uuid.uuid4().hex}:r:ss:config:"
    names = {p.stem: p for p in DEBUG_DIR.glob("*.json")}
    for name in ("webhook_config", "polling_config", "processing_prefs", "runtime_flags", "routing_rules"):
        client.set(prefix + name, names[name].read_bytes())
    client.set(prefix + "magic_link_tokens", names["magic_links"].read_bytes())
    client.set(prefix + "webhook_logs", b"[]")
    yield client, url, prefix
    client.close()


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_the_redis_store_imports_the_same_settings_as_the_files(original_redis):
    _, url, prefix = original_redis
    output = run("--from-redis", url, "--prefix", prefix, "--verify")
    assert f"Reading Redis {url}, prefix {prefix}: webhook_config, polling_config" in output
    assert f"{prefix}webhook_logs: not a configuration document" in output
    assert "magic_link_tokens (2 link(s)): not imported" in output
    # The files hold the same documents: against them, nothing differs.
    assert "Verify: OK" in run("--from-dir", str(DEBUG_DIR), "--dry-run", "--verify")
    assert "No changes" in run("--from-redis", url, "--prefix", prefix)


def test_an_unreachable_source_is_a_clear_error():
    with pytest.raises(CommandError, match=r"cannot read Redis at redis://:\*\*\*@127.0.0.1") as failed:
        run("--from-redis", f"redis://:secret@127.0.0.1:{free_port()}/0")
    assert failed.value.returncode == 2 and "secret" not in str(failed.value)
    with pytest.raises(CommandError, match="is not a directory"):
        run("--from-dir", "/nonexistent/debug")


def test_unreadable_documents_are_reported_and_the_rest_imported(tmp_path):
    folder = documents_dir(tmp_path, routing_rules="{not json", runtime_flags="[1, 2]")
    output = run("--from-dir", str(folder))
    assert "routing_rules (routing_rules.json) is not valid JSON" in output
    assert "runtime_flags: not a JSON object (list)" in output
    assert not RoutingRule.objects.exists()
    assert Endpoint.objects.get(name="default").url == RECEIVER


def test_an_invalid_rule_made_the_original_route_nothing_so_the_rules_come_switched_off(tmp_path):
    rules = json.loads((DEBUG_DIR / "routing_rules.json").read_text())
    rules["rules"].append({"name": "broken", "conditions": [], "actions": {"webhook_url": RECEIVER}})
    output = run("--from-dir", str(documents_dir(tmp_path, routing_rules=rules)), "--verify")
    assert "routing_rules rule 4 (no condition): the original refused the whole list" in output
    assert list(RoutingRule.objects.values_list("enabled", flat=True)) == [False, False, False]


def test_a_regex_that_re2_cannot_run_is_reported_and_the_other_rules_kept(tmp_path):
    rules = {
        "rules": [
            {
                "name": "lookahead",
                "conditions": [{"field": "subject", "operator": "regex", "value": "Lot(?= 4)"}],
                "actions": {"webhook_url": RECEIVER},
            },
            {
                "name": "plain",
                "conditions": [{"field": "subject", "operator": "contains", "value": "Lot"}],
                "actions": {"webhook_url": RECEIVER},
            },
        ]
    }
    output = run("--from-dir", str(documents_dir(tmp_path, routing_rules=rules)), "--verify")
    assert "Routing rule 'lookahead': RE2, the regular-expression engine used here" in output
    assert "has no look-ahead" in output
    assert list(RoutingRule.objects.values_list("name", "order")) == [("plain", 2)]


def test_a_window_the_original_could_not_read_means_no_window(tmp_path):
    config = {"webhook_time_start": "9h", "webhook_time_end": "19h00", "webhook_sending_enabled": False}
    output = run("--from-dir", str(documents_dir(tmp_path, webhook_config=config)))
    schedule = SendingSchedule.load()
    assert (schedule.window_start, schedule.window_end, schedule.sending_enabled) == ("", "", False)
    assert "webhook_config.webhook_time_start = '9h': not a time" in output


def test_a_missing_side_of_the_window_comes_from_the_environment_as_before(tmp_path, settings):
    settings.LEGACY_SENDING_SCHEDULE = {**settings.LEGACY_SENDING_SCHEDULE, "window_end": "18h00"}
    run("--from-dir", str(documents_dir(tmp_path, webhook_config={"webhook_time_start": "08:30"})))
    schedule = SendingSchedule.load()
    assert (schedule.window_start, schedule.window_end) == ("08:30", "18h00")


def test_a_vacation_ending_before_it_starts_is_no_vacation(tmp_path):
    Mailbox.objects.update(vacation_start=dt.date(2026, 1, 1), vacation_end=dt.date(2026, 1, 2))
    polling = {"vacation_start": "2026-08-15", "vacation_end": "2026-08-01", "enable_polling": "maybe"}
    output = run("--from-dir", str(documents_dir(tmp_path, polling_config=polling)))
    box = Mailbox.objects.get()
    assert (box.vacation_start, box.vacation_end, box.enabled) == (None, None, True)
    assert "not a date range: the original applied no vacation" in output
    assert "enable_polling = 'maybe' is not yes/no: taken as on" in output


def test_polling_config_needs_its_mailbox(tmp_path):
    Mailbox.objects.create(name="second", host="imap.example", username="u", password="p")
    output = run("--from-dir", str(DEBUG_DIR))
    assert "polling_config: several mailboxes: name its mailbox with --mailbox" in output
    run("--from-dir", str(DEBUG_DIR), "--mailbox", "second")
    assert Mailbox.objects.get(name="second").active_start == dt.time(8)
    assert Mailbox.objects.get(name="default").active_start == dt.time(9)
    Mailbox.objects.all().delete()
    assert "polling_config: no mailbox yet: set EMAIL_ADDRESS" in run("--from-dir", str(DEBUG_DIR))


def test_placeholder_and_private_targets_are_not_carried_over(tmp_path, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    rules = {
        "rules": [
            {
                "name": "inside",
                "conditions": [{"field": "body", "operator": "contains", "value": "x"}],
                "actions": {"webhook_url": "https://127.0.0.2/hook"},
            }
        ]
    }
    folder = documents_dir(tmp_path, webhook_config={"webhook_url": "https://example.com/hook"}, routing_rules=rules)
    output = run("--from-dir", str(folder))
    assert "webhook_config.webhook_url https://example.com/…: a placeholder host" in output
    assert "Routing rule 'inside' webhook_url https://127.0.0.2/…: 127.0.0.2 resolves to 127.0.0.2, a private" in output
    assert Endpoint.objects.get().url == OLD_URL and not RoutingRule.objects.exists()


def test_without_any_endpoint_the_document_s_url_creates_the_default_one(tmp_path, settings):
    Endpoint.objects.all().delete()
    settings.LEGACY_ENDPOINT_URL = ""
    run("--from-dir", str(DEBUG_DIR))
    endpoint = Endpoint.objects.get(name="default")
    assert (endpoint.url, endpoint.is_default, endpoint.success_rule) == (RECEIVER, True, "json_success")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (True, True),
        (0, False),
        (1.0, True),
        (" Yes ", True),
        ("off", False),
        ("n", False),
        ("maybe", None),
        (None, None),
    ],
)
def test_enable_polling_is_read_as_the_original_read_it(raw, expected):
    assert values.robust_bool(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://hook.eu2.make.com/tok", "https://hook.eu2.make.com/tok"),
        ("tok@hook.eu2.make.com", "https://hook.eu2.make.com/tok"),
        ("tok", "https://hook.eu2.make.com/tok"),
        ("not a url/at all", "not a url/at all"),
    ],
)
def test_make_shorthands_become_webhook_urls(raw, expected):
    assert values.make_webhook_url(raw) == expected


def test_urls_are_shown_without_the_parts_that_carry_tokens():
    assert values.mask_url("https://hook.eu2.make.com/secret-token?x=1") == "https://hook.eu2.make.com/…"
    assert values.mask_url("https://receiver.example.org/") == "https://receiver.example.org"
    assert masked_redis_url("redis://user:pw@cache:6380/2") == "redis://user:***@cache:6380/2"
