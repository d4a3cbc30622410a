"""Reference §3.6 outcomes outside the window, Absence Globale precedence, payload strings."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from delivery.models import SendingSchedule
from delivery.schedule import in_window, next_opening, outcome, window_strings

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
DESABO, RECADRAGE = "desabonnement_journee_tarifs", "recadrage"


def at(hour: int, minute: int = 0, day: int = 3) -> dt.datetime:
    """2026-11-03 is a Tuesday."""
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=PARIS)


def schedule(**fields: object) -> SendingSchedule:
    values: dict[str, object] = {"window_start": "09h00", "window_end": "19:00", "timezone": "Europe/Paris"}
    values.update(fields)
    return SendingSchedule(**values)


def test_window_start_is_inclusive_and_end_exclusive():
    s = schedule()
    assert in_window(s, at(9, 0)) and in_window(s, at(18, 59))
    assert not in_window(s, at(8, 59)) and not in_window(s, at(19, 0))


def test_window_wraps_midnight():
    s = schedule(window_start="22h00", window_end="06h00")
    assert in_window(s, at(23)) and in_window(s, at(5)) and not in_window(s, at(12))


def test_equal_start_and_end_is_a_closed_window():
    assert not in_window(schedule(window_start="10h00", window_end="10:00"), at(10))


def test_a_missing_or_malformed_side_means_no_constraint():
    assert in_window(schedule(window_end=""), at(3))
    assert in_window(schedule(window_start="9h"), at(3))  # "9h" is not HHhMM: ignored as in the original


def test_window_is_evaluated_in_the_schedule_zone():
    s = schedule()
    assert in_window(s, dt.datetime(2026, 11, 3, 8, 30, tzinfo=dt.UTC))  # 09:30 in Paris
    assert not in_window(s, dt.datetime(2026, 11, 3, 18, 30, tzinfo=dt.UTC))  # 19:30 in Paris


@pytest.mark.parametrize(
    ("detector", "urgent", "action"),
    [
        (DESABO, False, "send"),  # bypass
        (DESABO, True, "hold"),  # the original retried it next cycle
        (RECADRAGE, False, "skip"),  # dropped, marked
        ("", False, "hold"),  # the original retried it next cycle
    ],
)
def test_outcomes_outside_the_window(detector, urgent, action):
    result = outcome(schedule(), at(20), detector, urgent)
    assert result.action == action
    if action == "hold":
        assert result.release_at == at(9, day=4).astimezone(dt.UTC)
        assert result.wait_for_window


def test_everything_is_sent_inside_the_window():
    for detector in (DESABO, RECADRAGE, ""):
        assert outcome(schedule(), at(12), detector, True).action == "send"


def test_absence_globale_beats_the_desabo_bypass_and_holds_until_the_next_day():
    s = schedule(absence_days="tuesday")
    result = outcome(s, at(20), DESABO, False)
    assert result.action == "hold"
    assert "Absence Globale on tuesday" in result.reason
    assert result.release_at == at(9, day=4).astimezone(dt.UTC)


def test_absence_is_judged_in_the_schedule_zone_not_utc():
    # 00:30 Wednesday in Paris is still Tuesday in UTC (W-8).
    s = schedule(absence_days="wednesday", window_start="", window_end="")
    assert outcome(s, dt.datetime(2026, 11, 3, 23, 30, tzinfo=dt.UTC), "", False).action == "hold"


def test_switching_sending_off_holds_without_a_release_time():
    result = outcome(schedule(sending_enabled=False), at(12), DESABO, False)
    assert (result.action, result.release_at) == ("hold", None)


def test_next_opening_skips_absence_days():
    s = schedule(absence_days="wednesday,thursday")
    assert next_opening(s, at(20)) == at(9, day=6).astimezone(dt.UTC)


def test_payload_strings_inside_the_window():
    assert window_strings(schedule(), at(12), DESABO, False) == {
        "webhooks_time_start": "maintenant",
        "webhooks_time_end": "19:00",
    }


def test_payload_strings_before_the_window_for_non_urgent_desabo():
    assert window_strings(schedule(), at(7), DESABO, False) == {
        "webhooks_time_start": "09h00",
        "webhooks_time_end": "19:00",
    }


def test_payload_strings_after_the_window_omit_the_start():
    assert window_strings(schedule(), at(20), DESABO, False) == {"webhooks_time_end": "19:00"}


def test_no_window_means_no_payload_strings():
    assert window_strings(schedule(window_start="", window_end=""), at(12), DESABO, False) == {}
