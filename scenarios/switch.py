"""Keep the Make.com scenarios running while mail is taken in, stopped otherwise (reference §1.13).

The wanted state follows the mailboxes: running when at least one mailbox is switched on and
not on vacation, stopped when every mailbox is off or on vacation. A toggle is asked for only
when the wanted state differs from the last one applied (or none was ever applied), recorded
as a ScenarioToggle row, and retried with growing delays until it succeeds or is no longer
wanted. Rows are claimed with a conditional UPDATE, so two workers never send the same toggle.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from delivery import http
from mail.models import Mailbox
from scenarios import make
from scenarios.models import OPEN, ScenarioToggle

logger = logging.getLogger(__name__)

# Seconds before each retry of a failed toggle; the last one repeats.
RETRY_DELAYS = (60, 120, 300, 600, 1800, 3600)
CLAIM_SECONDS = make.TIMEOUT_SECONDS + 30


def wanted_state(now: dt.datetime) -> tuple[str, str] | None:
    """("start" or "stop", why), or None when there is no mailbox to follow."""
    mailboxes = list(Mailbox.objects.order_by("pk"))
    if not mailboxes:
        return None
    serving = [m for m in mailboxes if m.enabled and not m.on_vacation(now)]
    if serving:
        return "start", f"Mailbox {serving[0]} is switched on and not on vacation."
    return "stop", "; ".join(_why_stopped(m) for m in mailboxes) + "."


def _why_stopped(mailbox: Mailbox) -> str:
    if not mailbox.enabled:
        return f"Mailbox {mailbox} is switched off"
    return f"Mailbox {mailbox} is on vacation until {mailbox.vacation_end}"


def plan(now: dt.datetime) -> list[ScenarioToggle]:
    """Create the toggles a change of state calls for; returns them."""
    wanted = wanted_state(now)
    if wanted is None:
        return []
    action, reason = wanted
    planned = [_plan_one(name, scenario_id, action, reason) for name, scenario_id in settings.MAKE_SCENARIOS.items()]
    return [toggle for toggle in planned if toggle is not None]


def _plan_one(name: str, scenario_id: int, action: str, reason: str) -> ScenarioToggle | None:
    pending = ScenarioToggle.objects.filter(scenario=name, status__in=OPEN).first()
    if pending is not None:
        if (pending.action, pending.scenario_id) == (action, scenario_id):
            return None  # already on its way
        if not _supersede(pending):
            return None  # being sent right now: decide again on the next run
    elif _last_applied(name) == (action, scenario_id):
        return None
    # After a superseded toggle the scenario's real state is unknown (its request may have
    # arrived), so the wanted state is asserted again.
    try:
        with transaction.atomic():
            toggle = ScenarioToggle.objects.create(
                scenario=name, scenario_id=scenario_id, action=action, reason=reason, via=make.channel()
            )
    except IntegrityError:
        return None  # another worker planned it meanwhile
    logger.info("MAKE_WATCHER: %s scenario %s (id=%s) wanted: %s", action, name, scenario_id, reason)
    return toggle


def _supersede(toggle: ScenarioToggle) -> bool:
    superseded = ScenarioToggle.objects.filter(pk=toggle.pk, status__in=("pending", "failed")).update(
        status="superseded", finished_at=timezone.now()
    )
    return superseded == 1


def _last_applied(name: str) -> tuple[str, int] | None:
    done = ScenarioToggle.objects.filter(scenario=name, status="done").order_by("-finished_at", "-pk").first()
    return (done.action, done.scenario_id) if done else None


def _due(now: dt.datetime) -> Q:
    """Due for an attempt: waiting for its time, or claimed by a sender that died."""
    return Q(status__in=("pending", "failed"), next_attempt_at__lte=now) | Q(status="sending", claimed_until__lt=now)


def due_ids(now: dt.datetime) -> list[int]:
    return list(ScenarioToggle.objects.filter(_due(now)).order_by("pk").values_list("pk", flat=True))


def claim(toggle_id: int, now: dt.datetime) -> bool:
    """Take a due toggle for this worker; of two workers claiming it, one wins."""
    claimed_until = now + dt.timedelta(seconds=CLAIM_SECONDS)
    return (
        ScenarioToggle.objects.filter(_due(now), pk=toggle_id).update(status="sending", claimed_until=claimed_until)
        == 1
    )


def attempt(toggle: ScenarioToggle) -> bool:
    """Send one claimed toggle and record the outcome on its row; True when it succeeded."""
    toggle.attempts += 1
    toggle.via = make.channel()
    try:
        response = make.call(toggle.scenario_id, toggle.action)
    except http.HttpError as e:
        _failed(toggle, None, e.message, "")
        return False
    snippet = response.body[:500].decode("utf-8", "replace")
    if not make.succeeded(response, toggle.via):
        _failed(toggle, response.status_code, f"HTTP {response.status_code}", snippet)
        return False
    toggle.status, toggle.status_code, toggle.response_snippet = "done", response.status_code, snippet
    toggle.last_error, toggle.finished_at, toggle.claimed_until = "", timezone.now(), None
    toggle.save()
    logger.info(
        "MAKE_WATCHER: %s of scenario %s (id=%s) done: HTTP %s",
        toggle.action,
        toggle.scenario,
        toggle.scenario_id,
        response.status_code,
    )
    return True


def _failed(toggle: ScenarioToggle, status_code: int | None, error: str, snippet: str) -> None:
    delay = RETRY_DELAYS[min(toggle.attempts, len(RETRY_DELAYS)) - 1]
    toggle.status, toggle.status_code, toggle.response_snippet = "failed", status_code, snippet
    toggle.last_error, toggle.claimed_until = error, None
    toggle.next_attempt_at = timezone.now() + dt.timedelta(seconds=delay)
    toggle.save()
    logger.warning(
        "MAKE_WATCHER: %s of scenario %s (id=%s) failed (attempt %d): %s; retry in %d s",
        toggle.action,
        toggle.scenario,
        toggle.scenario_id,
        toggle.attempts,
        error,
        delay,
    )


def sync(now: dt.datetime | None = None) -> int:
    """Plan what a change of state calls for, then send every due toggle; returns how many succeeded."""
    if not make.configured():
        return 0
    now = now or timezone.now()
    plan(now)
    done = 0
    for toggle_id in due_ids(now):
        if claim(toggle_id, now):
            done += attempt(ScenarioToggle.objects.get(pk=toggle_id))
    return done
