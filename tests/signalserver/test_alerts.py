"""The alert rules in deploy/prometheus: valid for Prometheus, firing when they should, on metrics /metrics exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from delivery.models import Attempt, Delivery
from tests.conftest import ROOT
from tests.delivery.conftest import make_email

RULES = ROOT / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool") or next((str(p) for p in [ROOT / ".venv" / "bin" / "promtool"] if p.exists()), "")
needs_promtool = pytest.mark.skipif(
    not PROMTOOL, reason="promtool is not installed (Debian package prometheus; make test installs it)"
)
# Series Prometheus itself adds, and PromQL words that look like names.
NOT_OURS = {"up", "and", "or", "on", "by", "without", "increase", "rate", "sum", "histogram_quantile", "le"}


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load((RULES / "alerts.yml").read_text())["groups"] for rule in group["rules"]]


@needs_promtool
def test_promtool_accepts_the_rules_and_the_scrape_config():
    for args in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"]):
        result = subprocess.run([PROMTOOL, *args], cwd=RULES, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_each_alert_fires_on_its_series_and_stays_quiet_before(tmp_path):
    result = subprocess.run(
        [PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=RULES, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (RULES / "alerts_test.yml").read_text()))
    assert tested == {rule["alert"] for rule in rules()}


def test_the_alerts_cover_what_operators_asked_for():
    names = {rule["alert"] for rule in rules()}
    assert names == {
        "SignalserverMailboxNotPolled",
        "SignalserverDeliveriesFailing",
        "SignalserverHeldDeliveriesOverdue",
        "SignalserverUnhealthy",
        "SignalserverNoJobClusterHeartbeat",
    }
    for rule in rules():
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@pytest.mark.django_db
def test_every_metric_an_alert_or_the_grafana_dashboard_reads_is_exported(client, box, endpoint):
    email = make_email(box, decision="delivered")
    delivery = Delivery.objects.create(
        email=email, endpoint=endpoint, status="delivered", delivered_at=email.received_at
    )
    Attempt.objects.create(delivery=delivery, outcome="delivered", status_code=200)
    exported = set()
    for family in text_string_to_metric_families(client.get("/metrics").content.decode()):
        exported |= {sample.name for sample in family.samples}
    expressions = [rule["expr"] for rule in rules()]
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "signalserver.json").read_text())
    expressions += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    named = {name for expr in expressions for name in re.findall(r"\b(signalserver_[a-z_]+|up)\b", expr)}
    ours = named - NOT_OURS
    assert ours, "no metric found in the expressions"
    assert ours <= exported, f"not exported: {sorted(ours - exported)}"
