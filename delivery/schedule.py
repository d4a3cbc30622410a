"""The sending schedule's rules: global switch, Absence Globale, the webhook window (reference §3.6)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from delivery.models import WEEKDAY_NAMES, SendingSchedule

RECADRAGE = "recadrage"
DESABO = "desabonnement_journee_tarifs"


@dataclass(frozen=True)
class Outcome:
    action: str  # "send", "hold" or "skip"
    release_at: dt.datetime | None = None
    reason: str = ""
    wait_for_window: bool = False


def in_window(schedule: SendingSchedule, now: dt.datetime) -> bool:
    """Start inclusive, end exclusive, wraps midnight; start == end is closed; no window is open."""
    window = schedule.window()
    if window is None:
        return True
    start, end = window
    t = now.astimezone(schedule.tz).time()
    if start == end:
        return False
    return start <= t < end if start < end else (t >= start or t < end)


def absent_today(schedule: SendingSchedule, now: dt.datetime) -> str:
    day = WEEKDAY_NAMES[now.astimezone(schedule.tz).weekday()]
    return day if day in schedule.absence_day_list() else ""


def blocked(schedule: SendingSchedule, now: dt.datetime) -> str:
    """Why nothing may be sent now ('' when sending is allowed)."""
    if not schedule.sending_enabled:
        return "Sending is switched off."
    day = absent_today(schedule, now)
    return f"Absence Globale on {day}." if day else ""


def next_opening(schedule: SendingSchedule, now: dt.datetime) -> dt.datetime | None:
    """The first moment from `now` when sending is allowed and the window is open."""
    if not schedule.sending_enabled:
        return None
    tz = schedule.tz
    local = now.astimezone(tz)
    window = schedule.window()
    for days in range(8):
        day = local.date() + dt.timedelta(days=days)
        if WEEKDAY_NAMES[day.weekday()] in schedule.absence_day_list():
            continue
        if days == 0 and in_window(schedule, now):
            return now
        if window is not None and window[0] == window[1]:
            return None  # the window is closed every day
        opening_time = window[0] if window else dt.time(0)
        opening = dt.datetime.combine(day, opening_time, tzinfo=tz)
        if opening >= local:
            return opening.astimezone(dt.UTC)
    return None


def outcome(schedule: SendingSchedule, now: dt.datetime, detector: str, urgent: bool) -> Outcome:
    reason = blocked(schedule, now)
    if reason:
        return Outcome("hold", next_opening(schedule, now), reason + " Held until sending is allowed.")
    if in_window(schedule, now):
        return Outcome("send", reason="Inside the sending window.")
    if detector == DESABO and not urgent:
        return Outcome("send", reason="Outside the window: non-urgent DESABO is sent anyway.")
    if detector == RECADRAGE:
        return Outcome("skip", reason="Outside the sending window: recadrage emails are not sent later.")
    what = "urgent DESABO" if detector == DESABO else "an email without detector"
    release = next_opening(schedule, now)
    return Outcome("hold", release, f"Outside the sending window: {what} waits for it to open.", wait_for_window=True)


def window_strings(schedule: SendingSchedule, now: dt.datetime, detector: str, urgent: bool) -> dict[str, str]:
    """`webhooks_time_start` / `webhooks_time_end` for the payload, as the original sent them."""
    window = schedule.window()
    if window is None:
        return {}
    strings = {"webhooks_time_end": schedule.window_end}
    if in_window(schedule, now):
        strings["webhooks_time_start"] = "maintenant"
    elif detector == DESABO and not urgent and now.astimezone(schedule.tz).time() < window[0]:
        strings["webhooks_time_start"] = schedule.window_start
    return strings
