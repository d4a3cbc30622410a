"""Subject rules: text normalisation, reply/forward detection, subject groups."""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
import unicodedata

# Re:, Ré:, Fw:, Fwd:, TR:, RV:, Réf:, confirmation: — repeated, any case. Accents are
# stripped before matching, so "Ré:" and "Réf:" count as "re:" and "ref:" (W-13).
_REPLY_PREFIX_RE = re.compile(r"^(?:(?:re|ref|fw|fwd|rv|tr|aw|wg)\s*(?:\[\d+\])?\s*:|confirmation\s*:)\s*", re.I)
_TAG_RE = re.compile(r"<[^>]*>")
# Combining marks (accents) left by NFD decomposition.
_COMBINING_RE = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_LOT_RE = re.compile(r"\blot\s+(\d+)\b")


def plain_text(body: str) -> str:
    """Body text as a reader sees it: HTML tags dropped, entities decoded."""
    return html.unescape(_TAG_RE.sub(" ", body)) if "<" in body or "&" in body else body


def normalize(text: str) -> str:
    """Accents stripped (NFD), lower-cased, whitespace collapsed and trimmed."""
    if not text.isascii():
        text = _COMBINING_RE.sub("", unicodedata.normalize("NFD", text))
    return " ".join(text.lower().split())


def strip_reply_prefixes(subject: str) -> str:
    core = normalize(subject)
    while True:
        shorter = _REPLY_PREFIX_RE.sub("", core, count=1)
        if shorter == core:
            return core
        core = shorter.strip()


def is_reply(subject: str) -> bool:
    """True when the subject starts with a reply/forward prefix.

    Whitespace around the subject does not count (the original treated any subject with
    leading or trailing spaces as a reply, W-13).
    """
    return strip_reply_prefixes(subject) != normalize(subject)


def subject_group(subject: str) -> str:
    core = strip_reply_prefixes(subject)
    lot = _LOT_RE.search(core)
    if lot and all(k in core for k in ("media solution", "missions recadrage")):
        return f"media_solution_missions_recadrage_lot_{lot.group(1)}"
    if lot:
        return f"lot_{lot.group(1)}"
    return "subject_hash_" + hashlib.md5(core.encode(), usedforsecurity=False).hexdigest()


def is_lot_group(group: str) -> bool:
    return not group.startswith("subject_hash_")


def scoped_group(group: str, now: dt.datetime, monthly: bool) -> str:
    return f"{now:%Y-%m}:{group}" if monthly else group
