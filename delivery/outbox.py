"""The transactional outbox: deliveries are planned in the transaction that records an email."""

from __future__ import annotations

from typing import Any


def plan(email: Any) -> None:
    """Create the Delivery rows of an accepted email, in the caller's transaction."""
