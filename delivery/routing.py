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


NO_SUCH_FEATURE = (
    "RE2, the regular-expression engine used here (it cannot hang on any input), has no {}. "
    "Rewrite the pattern without it: match the surrounding text itself, or use two conditions."
)
# RE2's own messages, by their start, as sentences for the person writing the rule.
_RE2_MESSAGES = (
    ("invalid perl operator: (?<=", NO_SUCH_FEATURE.format("look-behind such as (?<=…) or (?<!…)")),
    ("invalid perl operator: (?<!", NO_SUCH_FEATURE.format("look-behind such as (?<=…) or (?<!…)")),
    ("invalid perl operator: (?=", NO_SUCH_FEATURE.format("look-ahead such as (?=…) or (?!…)")),
    ("invalid perl operator: (?!", NO_SUCH_FEATURE.format("look-ahead such as (?=…) or (?!…)")),
    ("invalid perl operator", "RE2 does not understand {detail!r}: groups are (…), (?:…) or (?P<name>…), flags (?i)."),
    ("missing )", "A parenthesis is not closed in {detail!r}: add the missing “)”."),
    ("unexpected )", "There is a “)” without its “(” in {detail!r}."),
    ("missing ]", "A character class is not closed in {detail!r}: add the missing “]”."),
    ("bad repetition operator", "A repetition (*, + or ?) is doubled at {detail!r}."),
    ("no argument for repetition operator", "The repetition {detail!r} has nothing before it to repeat."),
    ("invalid repetition size", "The repetition {detail} is not valid: use {{n}} or {{n,m}} with n ≤ m ≤ 1000."),
    ("trailing \\", "The pattern ends with a lone backslash: escape it as \\\\ or remove it."),
)


def explain_pattern_error(error: str) -> str:
    """A sentence for an invalid pattern: what is wrong, and how to write it for RE2."""
    detail = error.split(": ", 1)[-1]
    if error.startswith("invalid escape sequence: \\") and detail[1:].isdigit():
        return NO_SUCH_FEATURE.format("back-references such as \\1")
    if error.startswith("invalid escape sequence"):
        return f"RE2 does not know the escape {detail}: write the character itself, or escape it with \\."
    for start, sentence in _RE2_MESSAGES:
        if error.startswith(start):
            return sentence.format(detail=detail)
    return f"This is not a regular expression RE2 accepts ({error})."


def compile_pattern(value: str, case_sensitive: bool) -> Any:
    if len(value) > MAX_PATTERN_LENGTH:
        raise ValueError(f"The regular expression is longer than {MAX_PATTERN_LENGTH} characters")
    options = re2.Options()
    options.case_sensitive = case_sensitive
    options.max_mem = 8 << 20
    options.log_errors = False  # else RE2 writes its own (non-JSON) error lines to stderr
    try:
        return re2.compile(value, options)
    except re2.error as e:
        message = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise ValueError(explain_pattern_error(message)) from None


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
