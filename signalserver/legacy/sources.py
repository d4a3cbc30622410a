"""Where the original kept its configuration documents: JSON files under `debug/`, or Redis keys."""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

DOCUMENTS = ("webhook_config", "polling_config", "processing_prefs", "runtime_flags", "routing_rules")
MAGIC_LINKS = "magic_link_tokens"
# The original's file for magic-link tokens: MAGIC_LINK_TOKENS_FILE, by default debug/magic_links.json.
MAGIC_LINK_FILES = ("magic_link_tokens.json", "magic_links.json")
# Other files the original kept next to its documents, and why they are not read.
KNOWN_FILES = {
    "webhook_time_window.json": "the legacy global window only filled payload strings when no window was set",
    "webhook_logs.json": "webhook history is not imported (signalserver keeps its own attempts)",
    "webhook_links.json": "R2 link history: import it with `python manage.py import_links webhook_links.json`",
}


class SourceError(Exception):
    """The source cannot be read at all (missing directory, Redis unreachable)."""


@dataclass
class Source:
    label: str
    documents: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # documents present but unreadable
    unread: list[str] = field(default_factory=list)  # other entries, and why they are not read

    def add(self, name: str, text: str | bytes, where: str) -> None:
        try:
            self.documents[name] = json.loads(text)
        except (ValueError, RecursionError) as e:
            self.problems.append(f"{name} ({where}) is not valid JSON ({e}): the original read it as empty")


def read_dir(path: Path) -> Source:
    if not path.is_dir():
        raise SourceError(f"{path} is not a directory")
    source = Source(f"directory {path}")
    for name in DOCUMENTS:
        _add_file(source, name, path / f"{name}.json")
    for filename in MAGIC_LINK_FILES:
        if (path / filename).is_file():
            _add_file(source, MAGIC_LINKS, path / filename)
            break
    wanted = {f"{n}.json" for n in DOCUMENTS} | set(MAGIC_LINK_FILES)
    for other in sorted(p.name for p in path.glob("*.json") if p.name not in wanted):
        source.unread.append(f"{other}: {KNOWN_FILES.get(other, 'not a configuration document')}")
    return source


def _add_file(source: Source, name: str, path: Path) -> None:
    if path.is_file():
        try:
            source.add(name, path.read_bytes(), path.name)
        except OSError as e:
            raise SourceError(f"cannot read {path}: {e}") from None


def read_redis(url: str, prefix: str) -> Source:
    source = Source(f"Redis {masked_redis_url(url)}, prefix {prefix}")
    try:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        for name in (*DOCUMENTS, MAGIC_LINKS):
            value = client.get(prefix + name)
            if value is not None:
                source.add(name, value, prefix + name)
        keys = sorted(k.decode("utf-8", "replace") for k in client.scan_iter(match=_glob_escape(prefix) + "*"))
        client.close()
    except (redis.RedisError, ValueError) as e:
        raise SourceError(f"cannot read Redis at {masked_redis_url(url)}: {e}") from None
    known = {prefix + n for n in (*DOCUMENTS, MAGIC_LINKS)}
    source.unread += [f"{key}: not a configuration document" for key in keys if key not in known]
    return source


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def masked_redis_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return urllib.parse.urlunsplit(parts)
