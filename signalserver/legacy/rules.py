"""The original's routing rules document, validated as the original validated it (reference §3.9)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from signalserver.legacy.values import is_loose_string, loose_bool, make_webhook_url

FIELDS = ("sender", "subject", "body")
OPERATORS = ("contains", "equals", "regex")
PRIORITIES = ("normal", "high")
MAX_REGEX_LENGTH = 200  # the original's limit


class RuleRefused(Exception):
    """The original refused this rule, and with it the whole list."""


@dataclass(frozen=True)
class Condition:
    field: str
    operator: str
    value: str
    case_sensitive: bool


@dataclass(frozen=True)
class LegacyRule:
    id: str
    name: str
    conditions: tuple[Condition, ...]
    url: str
    priority: str
    stop_processing: bool
    loose: tuple[str, ...] = ()  # yes/no settings stored as text, taken by truthiness


def normalize(raw: Any, index: int, used_ids: set[str]) -> LegacyRule:
    """One rule as the original stored it: default id and name, lower-cased words, Make shorthand."""
    if not isinstance(raw, dict):
        raise RuleRefused("not an object")
    rule_id = str(raw.get("id") or "").strip() or f"rule-{index + 1}"
    if rule_id in used_ids:
        rule_id = f"{rule_id}-{index + 1}"
    used_ids.add(rule_id)
    name = str(raw.get("name") or f"Rule {index + 1}").strip()
    if not name:
        raise RuleRefused("no name")
    url, priority, stop = _actions(raw.get("actions"))
    return LegacyRule(rule_id, name, _conditions(raw.get("conditions")), url, priority, stop, _loose(raw))


def _loose(raw: dict[str, Any]) -> tuple[str, ...]:
    conditions = raw.get("conditions") or []
    found = [(f"conditions[{i}].case_sensitive", c.get("case_sensitive")) for i, c in enumerate(conditions)]
    found.append(("actions.stop_processing", raw["actions"].get("stop_processing")))
    return tuple(f"{where} = {value!r}" for where, value in found if is_loose_string(value))


def _conditions(raw: Any) -> tuple[Condition, ...]:
    if not isinstance(raw, list) or not raw:
        raise RuleRefused("no condition")
    return tuple(_condition(c) for c in raw)


def _condition(raw: Any) -> Condition:
    if not isinstance(raw, dict):
        raise RuleRefused("a condition is not an object")
    field = str(raw.get("field") or "").strip().lower()
    operator = str(raw.get("operator") or "").strip().lower()
    value = str(raw.get("value") or "").strip()
    if field not in FIELDS:
        raise RuleRefused(f"unknown condition field {field!r}")
    if operator not in OPERATORS:
        raise RuleRefused(f"unknown operator {operator!r}")
    if not value:
        raise RuleRefused("a condition has no value")
    if operator == "regex" and len(value) > MAX_REGEX_LENGTH:
        raise RuleRefused(f"a regular expression is longer than {MAX_REGEX_LENGTH} characters")
    return Condition(field, operator, value, loose_bool(raw.get("case_sensitive", False)))


def _actions(raw: Any) -> tuple[str, str, bool]:
    if not isinstance(raw, dict):
        raise RuleRefused("no actions")
    url = raw.get("webhook_url")
    if not isinstance(url, str) or not url.strip():
        raise RuleRefused("no webhook_url")
    url = make_webhook_url(url)
    if not url.startswith("https://"):
        raise RuleRefused("webhook_url is not an https URL")
    priority = str(raw.get("priority") or "normal").strip().lower()
    if priority not in PRIORITIES:
        raise RuleRefused(f"unknown priority {priority!r}")
    return url, priority, loose_bool(raw.get("stop_processing", False))
