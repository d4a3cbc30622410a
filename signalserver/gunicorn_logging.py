"""Gunicorn's own logs in the service's format (gunicorn.conf.py names this class).

With LOG_FORMAT=json (production) Gunicorn's error log and access log are JSON lines like
every other log line: an access line carries the method, the path (sign-in and other tokens
redacted), the status, the duration and the request id. In text mode they keep Gunicorn's
usual layout, with the same redaction.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from gunicorn.glogging import Logger

from signalserver.logs import ContextFilter, JsonFormatter, redact


def log_format() -> str:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "signalserver.settings")
    from django.conf import settings

    return str(settings.LOG_FORMAT)


class RedactingLogger(Logger):  # type: ignore[misc]
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        self.json = log_format() == "json"
        if not self.json:
            return
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(JsonFormatter())
                handler.addFilter(ContextFilter())

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        # The request line, the path, the query, the Referer (the page after signing in was opened from the link).
        for key, value in atoms.items():
            if isinstance(value, str):
                atoms[key] = redact(value)
        return atoms

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        if not self.json:
            super().access(resp, req, environ, request_time)
            return
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        path = redact(environ.get("RAW_URI") or environ.get("PATH_INFO", ""))
        fields = {
            "method": atoms["m"],
            "path": path,
            "status": int(atoms["s"]) if str(atoms["s"]).isdigit() else atoms["s"],
            "duration_ms": round(request_time.total_seconds() * 1000, 1),
            "request_id": atoms.get("{x-request-id}o", "-"),
            "bytes": atoms["B"],
            "remote_addr": atoms["h"],
            "user_agent": atoms["a"],
        }
        self.access_log.log(
            logging.INFO,
            "%s %s %s %.1f ms",
            fields["method"],
            path,
            fields["status"],
            fields["duration_ms"],
            extra=fields,
        )
