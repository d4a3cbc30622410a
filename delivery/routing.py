"""Routing rules: which endpoints an email goes to. Regexes run on RE2 (linear time, no ReDoS)."""

from __future__ import annotations

from typing import Any, Protocol

import re2

from delivery.models import Endpoint, RoutingRule, RuleCondition

MAX_PATTERN_LENGTH = 500


class Routable(Protocol):
    sender: str
    subject: str
    text: str


def compile_pattern(value: str, case_sensitive: bool) -> Any:
    if len(value) > MAX_PATTERN_LENGTH:
        raise ValueError(f"The regular expression is longer than {MAX_PATTERN_LENGTH} characters")
    options = re2.Options()
    options.case_sensitive = case_sensitive
    options.max_mem = 8 << 20
    try:
        return re2.compile(value, options)
    except re2.error as e:
        raise ValueError(f"Invalid regular expression: {e}") from None


def condition_matches(condition: RuleCondition, email: Routable) -> bool:
    text = {"sender": email.sender, "subject": email.subject, "body": email.text}[condition.field] or ""
    value = condition.value
    if condition.operator == "regex":
        return compile_pattern(value, condition.case_sensitive).search(text) is not None
    if not condition.case_sensitive:
        text, value = text.lower(), value.lower()
    return value == text if condition.operator == "equals" else value in text


def active_rules() -> list[RoutingRule]:
    rules = RoutingRule.objects.filter(enabled=True, endpoint__enabled=True).select_related("endpoint")
    return list(rules.prefetch_related("conditions"))


def default_endpoints() -> list[Endpoint]:
    return list(Endpoint.objects.filter(enabled=True, is_default=True))


def matching_rule(email: Routable, rules: list[RoutingRule]) -> RoutingRule | None:
    for rule in rules:
        conditions = list(rule.conditions.all())
        if conditions and all(condition_matches(c, email) for c in conditions):
            return rule
    return None


def targets(
    email: Routable, rules: list[RoutingRule], defaults: list[Endpoint]
) -> tuple[list[Endpoint], RoutingRule | None]:
    """The endpoints for an email: the first matching rule's, plus the defaults unless it stops."""
    rule = matching_rule(email, rules)
    endpoints = [rule.endpoint] if rule else []
    if rule is None or not rule.stop_processing:
        endpoints += defaults
    unique = {e.pk: e for e in endpoints}
    return list(unique.values()), rule
