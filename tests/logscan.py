"""Every log line of a test run, kept in one file, and the scan that proves no secret is in it.

A handler on the root logger writes each record as production prints it (the context
filter, which redacts, then the JSON formatter); tests that run real processes append
what those printed. The last test of the run scans the file.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from pathlib import Path

from signalserver.logs import ContextFilter, JsonFormatter

ROOT = Path(__file__).resolve().parent.parent
LOG_PATH = Path(os.environ.get("TEST_ARTIFACTS_DIR", str(ROOT / "test-artifacts"))) / "test-run.log"

# Secrets the test suite itself sets.
KNOWN_SECRETS = (
    "test-secret-key-with-enough-entropy-0123456789abcdefghijklmnop",
    "prod-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFGH",
    "correct horse battery staple",
    "worker-token",
    "m3trics-t0ken-for-prometheus",
)
# Secrets made while it runs: signing secrets, API tokens, sign-in link tokens, bearer credentials.
SECRET_PATTERNS = (
    re.compile(r"whsec_[A-Za-z0-9+/=]{16,}"),
    re.compile(r"sst_[A-Za-z0-9_-]{20,}"),
    re.compile(r"/login/magic/(?!\[redacted\])[A-Za-z0-9_-]{20,}"),
    re.compile(r"Bearer\s+(?!<)[A-Za-z0-9_.~+/-]{12,}"),
    re.compile(r"[?&](?:token|key|secret|password)=(?!\[redacted\])[^&\s\"]{6,}", re.IGNORECASE),
)


class RunLogHandler(logging.FileHandler):
    def __init__(self) -> None:
        LOG_PATH.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(LOG_PATH, mode="w", encoding="utf-8")
        self.addFilter(ContextFilter())
        self.setFormatter(JsonFormatter())


def record_output(label: str, text: str) -> None:
    """Add what a process started by a test printed."""
    with LOG_PATH.open("a", encoding="utf-8") as out:
        for line in text.splitlines():
            out.write(f"[{label}] {line}\n")


def find_secrets(lines: Iterable[str]) -> list[str]:
    leaks = []
    for number, line in enumerate(lines, 1):
        found = [s for s in KNOWN_SECRETS if s in line] + [
            m.group(0) for p in SECRET_PATTERNS for m in p.finditer(line)
        ]
        leaks += [f"line {number}: {secret!r} in {line[:300]}" for secret in found]
    return leaks
