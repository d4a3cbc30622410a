"""The original's configuration documents (reference §6.2) become the rows that now hold them.

| Document | Rows |
|---|---|
| `webhook_config` | sending schedule (switch, window, Absence Globale), the default endpoint's URL |
| `processing_prefs` | the default endpoint's timeout and hourly rate limit |
| `runtime_flags` | the Gmail push ingress switch |
| `polling_config` | the mailbox: days, hours, senders, subject groups, vacation, switch |
| `routing_rules` | routing rules in order, their conditions and target endpoints |

Values are read the way the original read them, malformed ones included (see `values`).
Whatever cannot be carried over is reported with the reason; nothing is ever deleted, and
a second import of the same documents changes nothing. The whole import is one transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import models, transaction

from delivery import http
from delivery.models import Endpoint, RoutingRule, RuleCondition, SendingSchedule, parse_window_time
from delivery.routing import compile_pattern
from mail.models import GmailIngress, Mailbox
from signalserver.legacy import rules, values
from signalserver.legacy.values import loose_bool, mask_url, text

Document = dict[str, Any]

WEBHOOK_KEYS = {
    "webhook_url",
    "webhook_ssl_verify",
    "webhook_sending_enabled",
    "webhook_time_start",
    "webhook_time_end",
    "global_time_start",
    "global_time_end",
    "absence_pause_enabled",
    "absence_pause_days",
    "webhook_delivery_mode",
    "webhook_fallback_on_415",
    "_updated_at",
}
OBSOLETE_WEBHOOK_KEYS = ("recadrage_webhook_url", "autorepondeur_webhook_url", "polling_enabled")
POLLING_KEYS = {
    "active_days",
    "active_start_hour",
    "active_end_hour",
    "sender_of_interest_for_polling",
    "enable_subject_group_dedup",
    "vacation_start",
    "vacation_end",
    "enable_polling",
    "_updated_at",
}
# processing_prefs the original stored but its live flow never applied, with their defaults.
UNUSED_PREFS: dict[str, Any] = {
    "exclude_keywords": [],
    "exclude_keywords_recadrage": [],
    "exclude_keywords_autorepondeur": [],
    "require_attachments": False,
    "max_email_size_mb": None,
    "sender_priority": {},
    "notify_on_failure": False,
    "mirror_media_to_custom": True,
}
RETRY_DEFAULTS = {"retry_count": 0, "retry_delay_sec": 2}
RUNTIME_FLAGS = ("disable_email_id_dedup", "allow_custom_webhook_without_links", "gmail_ingress_enabled", "_updated_at")


def shown(value: Any, name: str = "") -> str:
    if name == "url" and isinstance(value, str):
        return mask_url(value)
    if name == "conditions":
        return value or "(none)"
    if value is None or value == "":
        return "(empty)"
    if isinstance(value, dt.time):
        return value.strftime("%H:%M")
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Change:
    target: str
    name: str  # the field; empty when the row was created
    old: Any = None
    new: Any = None

    def __str__(self) -> str:
        if not self.name:
            return f"{self.target}: created"
        return f"{self.target}: {self.name} {shown(self.old, self.name)} → {shown(self.new, self.name)}"


@dataclass
class Report:
    changes: list[Change] = field(default_factory=list)
    not_carried: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def default_endpoint() -> Endpoint | None:
    named = Endpoint.objects.filter(name="default").first()
    return named or Endpoint.objects.filter(is_default=True).order_by("pk").first()


class Importer:
    def __init__(self, documents: dict[str, Any], mailbox: str | None = None) -> None:
        self.documents = documents
        self.mailbox_name = mailbox
        self.report = Report()

    def run(self) -> Report:
        steps: list[tuple[str, Callable[[Document], None]]] = [
            ("webhook_config", self.webhook_config),
            ("processing_prefs", self.processing_prefs),
            ("runtime_flags", self.runtime_flags),
            ("polling_config", self.polling_config),
            ("routing_rules", self.routing_rules),
            ("magic_link_tokens", self.magic_link_tokens),
        ]
        for name, step in steps:
            if name not in self.documents:
                continue
            document = self.documents[name]
            if isinstance(document, dict):
                step(document)
            else:
                self.skip(name, f"not a JSON object ({type(document).__name__}): the original read it as empty")
        return self.report

    # Recording

    def skip(self, what: str, why: str) -> None:
        self.report.not_carried.append(f"{what}: {why}")

    def note(self, text: str) -> None:
        self.report.notes.append(text)

    def loose(self, where: str, value: Any) -> None:
        """Say how a yes/no setting stored as text was taken (the original used Python truthiness)."""
        if values.is_loose_string(value):
            taken = "on" if loose_bool(value) else "off"
            self.note(f"{where} = {value!r} is text, not true/false: taken as {taken}, as the original did")

    def update(self, row: models.Model, label: str, **wanted: Any) -> None:
        changed = False
        for name, value in wanted.items():
            old = getattr(row, name)
            if old != value:
                self.report.changes.append(Change(label, name, old, value))
                setattr(row, name, value)
                changed = True
        if changed:
            row.save()

    def create(self, model: type[models.Model], label: str, **fields: Any) -> Any:
        row = model._default_manager.create(**fields)
        self.report.changes.append(Change(label, ""))
        return row

    def target_url(self, where: str, raw: str) -> str | None:
        """A webhook URL as the original normalised it, if signalserver may send there."""
        url = values.make_webhook_url(raw)
        problem = ""
        if not url.startswith("https://"):
            problem = "not an https URL"
        elif values.is_placeholder(url):
            problem = "a placeholder host (example.com, localhost…): the original never sent there"
        elif len(url) > 2000:
            problem = "longer than 2000 characters"
        if not problem:
            try:
                http.check_target(url)
            except http.HttpError as e:
                if e.permanent:
                    problem = e.message
                else:
                    self.note(f"{where} {mask_url(url)}: {e.message}; kept, and checked again at each send")
        if problem:
            self.skip(f"{where} {mask_url(url)}", problem)
            return None
        return url

    # webhook_config

    def webhook_config(self, doc: Document) -> None:
        schedule = SendingSchedule.load()
        wanted = {**self.sending_switch(doc), **self.window(doc), **self.absence(doc)}
        self.update(schedule, "Sending schedule", **wanted)
        self.webhook_url(doc)
        self.webhook_leftovers(doc)

    def sending_switch(self, doc: Document) -> dict[str, Any]:
        if "webhook_sending_enabled" not in doc:
            return {}  # the original used WEBHOOK_SENDING_ENABLED, which seeded the schedule
        self.loose("webhook_config.webhook_sending_enabled", doc["webhook_sending_enabled"])
        return {"sending_enabled": loose_bool(doc["webhook_sending_enabled"])}

    def window(self, doc: Document) -> dict[str, Any]:
        start, end = text(doc.get("webhook_time_start")), text(doc.get("webhook_time_end"))
        if not (start or end):
            return {}  # the original used WEBHOOKS_TIME_START/END, which seeded the schedule
        env = settings.LEGACY_SENDING_SCHEDULE
        start, end = start or str(env["window_start"]), end or str(env["window_end"])
        for name, value in (("webhook_time_start", start), ("webhook_time_end", end)):
            if value and parse_window_time(value) is None:
                self.skip(
                    f"webhook_config.{name} = {value!r}",
                    "not a time (HHhMM or HH:MM): the original then applied no window, so none is set",
                )
                return {"window_start": "", "window_end": ""}
        return {"window_start": start, "window_end": end}

    def absence(self, doc: Document) -> dict[str, Any]:
        if "absence_pause_enabled" not in doc and "absence_pause_days" not in doc:
            return {}
        days, unknown = values.absence_days(doc.get("absence_pause_days"))
        if unknown:
            self.skip(f"webhook_config.absence_pause_days {', '.join(unknown)}", "not weekday names: never matched")
        enabled = doc.get("absence_pause_enabled", False)
        self.loose("webhook_config.absence_pause_enabled", enabled)
        if not loose_bool(enabled):
            if days:
                self.skip(
                    f"webhook_config.absence_pause_days {', '.join(days)}",
                    "not applied, absence_pause_enabled is off (list the days in the sending schedule to pause)",
                )
            return {"absence_days": ""}
        return {"absence_days": ",".join(days)}

    def webhook_url(self, doc: Document) -> None:
        raw = text(doc.get("webhook_url"))
        url = self.target_url("webhook_config.webhook_url", raw) if raw else None
        if url is None:
            return
        endpoint = default_endpoint()
        if endpoint is None:
            self.create(
                Endpoint, "Endpoint default", name="default", url=url, is_default=True, success_rule="json_success"
            )
        else:
            self.update(endpoint, f"Endpoint {endpoint.name}", url=url)
        if settings.LEGACY_ENDPOINT_URL and settings.LEGACY_ENDPOINT_URL != url:
            self.note(
                "webhook_config.webhook_url differs from WEBHOOK_URL: the default endpoint now uses the document's"
                " (the original's push ingress did; its IMAP poller used WEBHOOK_URL)"
            )

    def webhook_leftovers(self, doc: Document) -> None:
        if "webhook_ssl_verify" in doc and not loose_bool(doc["webhook_ssl_verify"]):
            self.skip("webhook_config.webhook_ssl_verify = false", "signalserver always verifies TLS certificates")
        if text(doc.get("webhook_delivery_mode")).lower() == "form":
            self.skip("webhook_config.webhook_delivery_mode = form", "webhooks are always sent as JSON")
        if text(doc.get("global_time_start")) or text(doc.get("global_time_end")):
            self.skip(
                "webhook_config.global_time_start/global_time_end",
                "the legacy global window only filled payload strings when no window was set",
            )
        for key in sorted(k for k in doc if k not in WEBHOOK_KEYS):
            obsolete = key in OBSOLETE_WEBHOOK_KEYS or key.startswith("presence")
            self.skip(f"webhook_config.{key}", "obsolete in the original already" if obsolete else "unknown setting")

    # processing_prefs

    def processing_prefs(self, doc: Document) -> None:
        wanted = {**self.timeout(doc), **self.rate_limit(doc)}
        endpoint = default_endpoint()
        if wanted and endpoint is None:
            self.skip("processing_prefs timeout and rate limit", "no webhook endpoint (set WEBHOOK_URL or webhook_url)")
        elif wanted and endpoint is not None:
            self.update(endpoint, f"Endpoint {endpoint.name}", **wanted)
        self.retries(doc)
        for key, default in UNUSED_PREFS.items():
            if key in doc and doc[key] != default:
                self.skip(f"processing_prefs.{key} = {doc[key]!r}", "the original's live flow never applied it")

    def timeout(self, doc: Document) -> dict[str, Any]:
        if "webhook_timeout_sec" not in doc:
            return {}
        seconds = values.integer(doc["webhook_timeout_sec"] or 30)  # the original's `int(value or 30)`
        if seconds is None or not 1 <= seconds <= 300:
            self.skip(f"processing_prefs.webhook_timeout_sec = {doc['webhook_timeout_sec']!r}", "not 1 to 300 seconds")
            return {}
        return {"timeout_seconds": seconds}

    def rate_limit(self, doc: Document) -> dict[str, Any]:
        if "rate_limit_per_hour" not in doc:
            return {}
        limit = values.integer(doc["rate_limit_per_hour"])
        if limit is None or not 0 <= limit <= 100000:
            self.skip(f"processing_prefs.rate_limit_per_hour = {doc['rate_limit_per_hour']!r}", "not 0 to 100000")
            return {}
        if limit:
            self.note(
                f"processing_prefs.rate_limit_per_hour = {limit} now limits the default endpoint: beyond {limit}"
                " webhooks an hour, deliveries wait (none is dropped); the original's later versions never enforced it"
            )
        return {"rate_limit_per_hour": limit}

    def retries(self, doc: Document) -> None:
        custom = {k: doc[k] for k, default in RETRY_DEFAULTS.items() if k in doc and doc[k] not in (default, None)}
        if custom:
            listed = ", ".join(f"{k} = {v!r}" for k, v in custom.items())
            self.skip(
                f"processing_prefs {listed}",
                "deliveries are retried on signalserver's own schedule (DELIVERY_RETRY_DELAYS)",
            )

    # runtime_flags

    def runtime_flags(self, doc: Document) -> None:
        if "gmail_ingress_enabled" in doc:
            self.loose("runtime_flags.gmail_ingress_enabled", doc["gmail_ingress_enabled"])
            on = loose_bool(doc["gmail_ingress_enabled"])
            self.update(GmailIngress.load(), "Gmail push ingress", enabled=on)
        if "allow_custom_webhook_without_links" in doc:
            self.without_links(doc["allow_custom_webhook_without_links"])
        if loose_bool(doc.get("disable_email_id_dedup")):
            self.skip(
                "runtime_flags.disable_email_id_dedup", "every email is recorded once (the original never read it)"
            )
        for key in sorted(k for k in doc if k not in RUNTIME_FLAGS):
            self.skip(f"runtime_flags.{key}", "unknown flag, ignored by the original too")

    def without_links(self, value: Any) -> None:
        self.loose("runtime_flags.allow_custom_webhook_without_links", value)
        wanted = loose_bool(value)
        if wanted != settings.ALLOW_CUSTOM_WEBHOOK_WITHOUT_LINKS:
            self.skip(
                f"runtime_flags.allow_custom_webhook_without_links = {value!r}",
                f"set ALLOW_CUSTOM_WEBHOOK_WITHOUT_LINKS={str(wanted).lower()} in the environment, where it lives now",
            )

    # polling_config

    def polling_config(self, doc: Document) -> None:
        mailbox = self.mailbox()
        if mailbox is None:
            return
        wanted = {
            **self.days(doc),
            **self.hours(doc),
            **self.senders(doc, mailbox),
            **self.groups(doc),
            **self.vacation(doc),
            **self.polling_switch(doc),
        }
        self.update(mailbox, f"Mailbox {mailbox.name}", **wanted)
        for key in sorted(k for k in doc if k not in POLLING_KEYS):
            self.skip(f"polling_config.{key}", "unknown setting")

    def mailbox(self) -> Mailbox | None:
        boxes = Mailbox.objects.order_by("pk")
        if self.mailbox_name:
            named = boxes.filter(name=self.mailbox_name).first()
            if named is None:
                self.skip("polling_config", f"there is no mailbox named {self.mailbox_name!r}")
            return named
        found = list(boxes[:2])
        if len(found) == 1:
            return found[0]
        self.skip(
            "polling_config",
            "several mailboxes: name its mailbox with --mailbox"
            if found
            else "no mailbox yet: set EMAIL_ADDRESS, EMAIL_PASSWORD and IMAP_SERVER and run migrate"
            " (or add one in the admin), then import again",
        )
        return None

    def days(self, doc: Document) -> dict[str, Any]:
        if "active_days" not in doc:
            return {}
        raw, days = doc["active_days"], values.weekdays(doc["active_days"])
        if not days:
            self.skip(
                f"polling_config.active_days = {raw!r}", "no day 0-6 in a list: the original used POLLING_ACTIVE_DAYS"
            )
            return {}
        ignored = [repr(d) for d in raw if values.integer(d) not in days]
        if ignored:
            self.skip(f"polling_config.active_days entries {', '.join(ignored)}", "not days 0-6: ignored, as before")
        return {"active_days": ",".join(map(str, days))}

    def hours(self, doc: Document) -> dict[str, Any]:
        wanted = {}
        for key, name in (("active_start_hour", "active_start"), ("active_end_hour", "active_end")):
            if key not in doc:
                continue
            hour = values.hour(doc[key])
            if hour is None:
                self.skip(f"polling_config.{key} = {doc[key]!r}", "not an hour 0-23: the original used its variable")
            else:
                wanted[name] = dt.time(hour)
        return wanted

    def senders(self, doc: Document, mailbox: Mailbox) -> dict[str, Any]:
        key = "sender_of_interest_for_polling"
        if key not in doc:
            return {}
        kept, dropped = values.senders(doc[key])
        if dropped:
            self.skip(f"polling_config.{key} entries {', '.join(dropped)}", "not email addresses: dropped, as before")
        if not kept:
            self.skip(f"polling_config.{key} is empty", "the original used SENDER_OF_INTEREST_FOR_POLLING instead")
            return {}
        return {} if mailbox.allowed_sender_list() == kept else {"allowed_senders": "\n".join(kept)}

    def groups(self, doc: Document) -> dict[str, Any]:
        if "enable_subject_group_dedup" not in doc:
            return {}
        self.loose("polling_config.enable_subject_group_dedup", doc["enable_subject_group_dedup"])
        on = loose_bool(doc["enable_subject_group_dedup"])
        if on:
            self.note(
                "Subject groups are on, per month as the original scoped them; the original checked them but never"
                " marked a group handled, so it never skipped a Lot: now a second email of a handled Lot is skipped"
            )
        return {"subject_group_dedup": on, "subject_group_monthly": on}

    def vacation(self, doc: Document) -> dict[str, Any]:
        if "vacation_start" not in doc and "vacation_end" not in doc:
            return {}
        start, end = values.iso_date(doc.get("vacation_start")), values.iso_date(doc.get("vacation_end"))
        if start and end and start <= end:
            return {"vacation_start": start, "vacation_end": end}
        if doc.get("vacation_start") or doc.get("vacation_end"):
            dates = f"{doc.get('vacation_start')!r}/{doc.get('vacation_end')!r}"
            self.skip(
                f"polling_config.vacation_start/vacation_end = {dates}",
                "not a date range: the original applied no vacation, so none is set",
            )
        return {"vacation_start": None, "vacation_end": None}

    def polling_switch(self, doc: Document) -> dict[str, Any]:
        if "enable_polling" not in doc:
            return {}
        on = values.robust_bool(doc["enable_polling"])
        if on is None:
            self.note(
                f"polling_config.enable_polling = {doc['enable_polling']!r} is not yes/no: taken as on, as before"
            )
        return {"enabled": True if on is None else on}

    # routing_rules

    def routing_rules(self, doc: Document) -> None:
        found = doc.get("rules")
        if not isinstance(found, list):
            self.skip("routing_rules.rules", "not a list: the original used no rules")
            return
        valid, refused, used_ids = [], [], set[str]()
        for index, raw in enumerate(found):
            try:
                valid.append(rules.normalize(raw, index, used_ids))
            except rules.RuleRefused as e:
                refused.append(f"rule {index + 1} ({e})")
        if refused:
            self.skip(
                f"routing_rules {', '.join(refused)}",
                "the original refused the whole list for this and routed nothing: the other rules are imported"
                " switched off; check them, then enable them in the admin",
            )
        for order, rule in enumerate(with_unique_names(valid), start=1):
            self.routing_rule(rule, order, enabled=not refused)

    def routing_rule(self, rule: rules.LegacyRule, order: int, enabled: bool) -> None:
        label = f"Routing rule {rule.name!r}"
        for setting in rule.loose:
            self.note(f"{label}: {setting} is text, not true/false: taken as on, as the original did")
        problem = unrepresentable(rule)
        if problem:
            self.skip(label, problem)
            return
        url = self.target_url(f"{label} webhook_url", rule.url)
        if url is None:
            return
        wanted = {
            "order": order,
            "enabled": enabled,
            "endpoint": self.endpoint_for(url, rule.name),
            "priority": rule.priority,
            "stop_processing": rule.stop_processing,
        }
        row = RoutingRule.objects.filter(name=rule.name).order_by("pk").first()
        if row is None:
            row = self.create(RoutingRule, label, name=rule.name, **wanted)
        else:
            self.update(row, label, **wanted)
        self.conditions(row, label, rule.conditions)

    def conditions(self, row: RoutingRule, label: str, wanted: tuple[rules.Condition, ...]) -> None:
        current = tuple(
            rules.Condition(c.field, c.operator, c.value, c.case_sensitive) for c in row.conditions.order_by("pk")
        )
        if current == wanted:
            return
        row.conditions.all().delete()
        RuleCondition.objects.bulk_create(
            RuleCondition(rule=row, field=c.field, operator=c.operator, value=c.value, case_sensitive=c.case_sensitive)
            for c in wanted
        )
        self.report.changes.append(Change(label, "conditions", describe(current), describe(wanted)))

    def endpoint_for(self, url: str, rule_name: str) -> Endpoint:
        found = Endpoint.objects.filter(url=url).order_by("-is_default", "pk").first()
        if found is not None:
            return found
        name = unique_endpoint_name(f"rule {rule_name}")
        self.note(
            f"Endpoint {name} was made for routing rule {rule_name!r}: it counts any 2xx answer as delivered (choose"
            " “2xx and success: true” if it answers like the original receiver); rotate its secret to see it"
        )
        endpoint: Endpoint = self.create(Endpoint, f"Endpoint {name}", name=name, url=url, success_rule="2xx")
        return endpoint

    # magic_link_tokens

    def magic_link_tokens(self, doc: Document) -> None:
        count = sum(1 for key, record in doc.items() if not key.startswith("_") and isinstance(record, dict))
        self.skip(
            f"magic_link_tokens ({count} link(s))",
            "not imported: the original kept them in clear, so the move revokes them;"
            " make new ones with `python manage.py magic_link USERNAME`",
        )


def with_unique_names(found: list[rules.LegacyRule]) -> list[rules.LegacyRule]:
    """Rules are matched by name on the next import, so a repeated name gets its rule's id."""
    seen: set[str] = set()
    unique = []
    for rule in found:
        name = rule.name if rule.name not in seen else f"{rule.name} ({rule.id})"
        seen.add(name)
        unique.append(dataclasses.replace(rule, name=name[:100]))
    return unique


def unrepresentable(rule: rules.LegacyRule) -> str:
    """Why a rule cannot be kept as it is ('' when it can): RE2 regexes, stored lengths."""
    for condition in rule.conditions:
        if len(condition.value) > RuleCondition._meta.get_field("value").max_length:  # type: ignore[operator]
            return "a condition value is longer than 500 characters"
        if condition.operator == "regex":
            try:
                compile_pattern(condition.value, condition.case_sensitive)
            except ValueError as e:
                return f"{e} (signalserver runs regular expressions on RE2, which cannot hang a worker)"
    return ""


def unique_endpoint_name(base: str) -> str:
    base = base[:95]
    name, n = base, 2
    while Endpoint.objects.filter(name=name).exists():
        name, n = f"{base} {n}", n + 1
    return name


def describe(conditions: tuple[rules.Condition, ...]) -> str:
    if not conditions:
        return ""
    return "; ".join(
        f"{c.field} {c.operator} {c.value!r}" + (" (case-sensitive)" if c.case_sensitive else "") for c in conditions
    )


def import_documents(documents: dict[str, Any], mailbox: str | None = None, dry_run: bool = False) -> Report:
    """Import in one transaction; a dry run rolls it back, so it reports exactly what an import would change."""
    with transaction.atomic():
        report = Importer(documents, mailbox).run()
        if dry_run:
            transaction.set_rollback(True)
    return report
