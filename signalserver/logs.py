"""Log context (request id, job ids) and the JSON line formatter used in production."""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar("log_context", default={})  # noqa: B039

# Attributes every LogRecord has; anything else on a record was passed with `extra=`.
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


# Sign-in link tokens travel in URL paths, and callers may put a token in a query string;
# request logs must carry neither.
_MAGIC_PATH = re.compile(r"(/login/magic/)[^\s/?#'\"]+")
_SECRET_PARAM = re.compile(
    # A value already masked (deploy secrets are shown as ***) is left as it is.
    r"([?&](?:token|access_token|key|api_key|secret|password|signature|sig|code)=)(?!\*\*\*)[^&\s#'\"]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    if "/login/magic/" in text:
        text = _MAGIC_PATH.sub(r"\1[redacted]", text)
    if "=" in text:
        text = _SECRET_PARAM.sub(r"\1[redacted]", text)
    return text


def rewrite_message(record: logging.LogRecord, rewrite: Callable[[str], str]) -> None:
    """Replace the record's message with `rewrite(message)` when that changes it (its args folded in)."""
    message = record.getMessage()
    rewritten = rewrite(message)
    if rewritten != message:
        record.msg, record.args = rewritten, ()


@contextlib.contextmanager
def log_context(**values: object) -> Iterator[None]:
    """Attach `values` (request_id, email_id, delivery_id…) to every log line in this block."""
    merged = {**_context.get(), **{k: str(v) for k, v in values.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(token)


def current_context() -> dict[str, str]:
    return _context.get()


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        rewrite_message(record, redact)
        context = _context.get()
        for key, value in context.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        if not hasattr(record, "request_id"):
            record.request_id = context.get("request_id", "-")
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "-")
        if request_id != "-":
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value if isinstance(value, (int, float, bool)) or value is None else redact(str(value))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
