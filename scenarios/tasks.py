"""django-q2 jobs of the scenarios app."""

from __future__ import annotations

from scenarios import switch


def sync_scenarios() -> int:
    """Scheduled every minute: start or stop the Make.com scenarios on a change of state, retry failures."""
    return switch.sync()
