"""Field readers that take a stored value the way the original read it, malformed ones included.

Each returns the value the original acted on, or None when the original ignored the value
(and fell back to its environment variable or default). Where the original read a value
loosely (Python truthiness turns the string "false" into True), so do these, and the caller
reports it.
"""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse
from typing import Any

from delivery.models import WEEKDAY_NAMES

_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PLACEHOLDER_HOSTS = {"example.com", "example.org", "example.net", "test.com", "localhost", "127.0.0.1"}
MAKE_HOOK_HOST = "hook.eu2.make.com"


def loose_bool(value: Any) -> bool:
    """Python truthiness, as the original's `bool(value)`: the string "false" is True."""
    return bool(value)


def is_loose_string(value: Any) -> bool:
    """A non-empty string read by truthiness: worth telling the operator how it was taken."""
    return isinstance(value, str) and value.strip() != ""


def robust_bool(value: Any) -> bool | None:
    """bool, number, or a yes/no word (polling_config.enable_polling); None otherwise."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE | _FALSE:
            return word in _TRUE
    return None


def integer(value: Any) -> int | None:
    """`int(value)` as Python does it ("8" and 8.9 are 8); None when that raises."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def hour(value: Any) -> int | None:
    number = integer(value)
    return number if number is not None and 0 <= number <= 23 else None


def weekdays(value: Any) -> list[int]:
    """A list of day numbers 0-6 (strings allowed); anything else counts for nothing."""
    if not isinstance(value, list):
        return []
    return sorted({d for d in (integer(v) for v in value) if d is not None and 0 <= d <= 6})


def senders(value: Any) -> tuple[list[str], list[str]]:
    """(kept, dropped): a list or a comma-separated string, lower-cased, addresses only, de-duplicated."""
    if isinstance(value, list):
        items = [str(s).strip().lower() for s in value if str(s).strip()]
    elif isinstance(value, str):
        items = [s.strip().lower() for s in value.split(",") if s.strip()]
    else:
        items = []
    kept = list(dict.fromkeys(s for s in items if _EMAIL_RE.match(s)))
    return kept, [s for s in items if not _EMAIL_RE.match(s)]


def iso_date(value: Any) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value)).date()
    except ValueError:
        return None


def absence_days(value: Any) -> tuple[list[str], list[str]]:
    """(known weekday names in week order, what else was listed)."""
    if not isinstance(value, list):
        return [], []
    names = [str(d).strip().lower() for d in value if isinstance(d, str)]
    unknown = [repr(d) for d in value if not isinstance(d, str)] + [n for n in names if n not in WEEKDAY_NAMES]
    return [d for d in WEEKDAY_NAMES if d in names], unknown


def text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def make_webhook_url(value: str) -> str:
    """The original's Make shorthand: `<token>@hook.eu2.make.com` or a bare token is a Make webhook."""
    value = value.strip()
    if value.startswith(("http://", "https://")):
        return value
    if f"@{MAKE_HOOK_HOST}" in value and value.split("@", 1)[0].strip():
        return f"https://{MAKE_HOOK_HOST}/{value.split('@', 1)[0].strip()}"
    if value and not any(c in value for c in "/ @"):
        return f"https://{MAKE_HOOK_HOST}/{value}"
    return value


def is_placeholder(url: str) -> bool:
    """The hosts the original refused as targets (documentation and local names)."""
    host = (urllib.parse.urlsplit(url).hostname or "").lower()
    return not host or host in PLACEHOLDER_HOSTS or host.endswith((".example.com", ".example.net"))


def mask_url(url: str) -> str:
    """Scheme and host only: paths and queries of webhook URLs often carry tokens."""
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return "(not a URL)"
    rest = "/…" if (parts.path not in ("", "/") or parts.query) else ""
    return f"{parts.scheme}://{parts.hostname}{rest}"
