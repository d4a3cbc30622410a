"""Gunicorn's access log without the tokens of sign-in links (gunicorn.conf.py names this class)."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from signalserver.logs import redact


class RedactingLogger(Logger):  # type: ignore[misc]
    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        # The request line, the path, the Referer (the page after signing in was opened from the link).
        for key, value in atoms.items():
            if isinstance(value, str) and "/login/magic/" in value:
                atoms[key] = redact(value)
        return atoms
