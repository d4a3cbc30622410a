"""The GitHub webhook contract: HMAC-SHA256 signatures over the raw body, push events, delivery ids."""

from __future__ import annotations

import hashlib
import hmac
import re

DELIVERY_RE = re.compile(r"^[A-Za-z0-9-]{1,100}$")


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_valid(secret: str, body: bytes, header: str) -> bool:
    """Constant-time comparison of X-Hub-Signature-256 with the body's own signature."""
    return bool(header) and hmac.compare_digest(signature(secret, body).encode(), header.strip().encode())


def pushed_branch(payload: dict[str, object]) -> str | None:
    """The branch a push event updated, or None (a tag, a deleted branch, not a push payload)."""
    if payload.get("deleted"):
        return None
    ref = payload.get("ref")
    if isinstance(ref, str) and ref.startswith("refs/heads/"):
        return ref.removeprefix("refs/heads/")
    return None


def push_summary(payload: dict[str, object]) -> str:
    after = str(payload.get("after") or "")[:12]
    pusher = payload.get("pusher")
    name = pusher.get("name") if isinstance(pusher, dict) else None
    return f"push {after}" + (f" by {name}" if name else "")
