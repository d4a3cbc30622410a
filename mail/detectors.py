"""The two order detectors of the original app, with its outputs.

`recadrage`: "Média Solution - Missions Recadrage - Lot …" emails with a transfer link and
a delivery time. `desabonnement_journee_tarifs`: availability requests answered
automatically downstream.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from mail import links
from mail.subjects import normalize, plain_text

RECADRAGE = "recadrage"
DESABO = "desabonnement_journee_tarifs"

DESABO_REQUIRED_KEYWORDS = ["journee", "tarifs habituels", "desabonn"]
DESABO_FORBIDDEN_KEYWORDS = ["annulation", "facturation", "facture", "moment", "reference client", "total ht"]
MEDIA_SOLUTION_SUBJECT = "Média Solution - Missions Recadrage - Lot"

_A = r"(?:à|a)"
_PREFIX = rf"{_A}\s*faire\s+pour\s+(?:{_A}\s+)?"
_DATE = r"(\d{1,2})/(\d{1,2})/(\d{4})"
_H_TIME = r"(\d{1,2})\s*h\s*(\d{0,2})"
_COLON_TIME = r"(\d{1,2}):(\d{2})"
_DATE_H_RE = re.compile(rf"{_PREFIX}le\s+{_DATE}\s+(?:{_A}\s+)?(?:{_A}\s+)?{_H_TIME}", re.I)
_DATE_COLON_RE = re.compile(rf"{_PREFIX}le\s+{_DATE}\s+(?:{_A}\s+)?(?:{_A}\s+)?{_COLON_TIME}", re.I)
_TIME_H_RE = re.compile(rf"{_PREFIX}{_H_TIME}", re.I)
_TIME_COLON_RE = re.compile(rf"{_PREFIX}{_COLON_TIME}", re.I)
# Fallbacks anywhere in the body. A bare "9h" counts only after a word that introduces a
# time ("à 9h", "avant 18h"), so durations such as "sous 24h" or "en 2h" are not taken (W-14).
_FALLBACK_H_MINUTES_RE = re.compile(r"\b(\d{1,2})h(\d{2})\b", re.I)
_FALLBACK_H_BARE_RE = re.compile(rf"\b(?:{_A}|vers|avant|pour|jusqu'{_A})\s+(\d{{1,2}})h()(?![\w])", re.I)
_FALLBACK_COLON_RE = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_URGENCE_RE = re.compile(r"\burgence\b")


@dataclass(frozen=True)
class Detection:
    detector: str = ""
    delivery_time: str = ""
    urgent: bool = False


def _valid(hour: str, minute: str) -> bool:
    # W-14: an hour or minute out of range is not a time ("25h", "9h75").
    return 0 <= int(hour) <= 23 and 0 <= int(minute or 0) <= 59


def _hhmm(hour: str, minute: str) -> str:
    return f"{int(hour):02d}h{int(minute or 0):02d}"


def _first_time(pattern: re.Pattern[str], body: str) -> str:
    for m in pattern.finditer(body):
        if _valid(m.group(1), m.group(2)):
            return _hhmm(m.group(1), m.group(2))
    return ""


def _first_date_time(pattern: re.Pattern[str], body: str) -> str:
    for m in pattern.finditer(body):
        day, month, year, hour, minute = m.groups()
        if 1 <= int(day) <= 31 and 1 <= int(month) <= 12 and _valid(hour, minute):
            return f"le {int(day):02d}/{int(month):02d}/{year} à {_hhmm(hour, minute)}"
    return ""


def extract_delivery_time(subject: str, body: str, now: dt.datetime) -> str:
    """`now` must be in the mailbox's time zone: URGENCE means one hour from now."""
    if _URGENCE_RE.search(normalize(subject)):
        return (now + dt.timedelta(hours=1)).strftime("%Hh%M")
    # The "à faire pour …" patterns only run around each "faire": scanning the whole body
    # for them costs more than everything else in detection.
    near_faire = "\n".join(_around_faire(body))
    for pattern in (_DATE_H_RE, _DATE_COLON_RE):
        found = _first_date_time(pattern, near_faire)
        if found:
            return found
    for pattern, text in (
        (_TIME_H_RE, near_faire),
        (_TIME_COLON_RE, near_faire),
        (_FALLBACK_H_MINUTES_RE, body),
        (_FALLBACK_H_BARE_RE, body),
        (_FALLBACK_COLON_RE, body),
    ):
        found = _first_time(pattern, text)
        if found:
            return found
    return ""


def _around_faire(body: str) -> list[str]:
    lowered = body.lower()
    windows, at = [], lowered.find("faire")
    while at >= 0:
        windows.append(body[max(0, at - 4) : at + 80])
        at = lowered.find("faire", at + 5)
    return windows


def is_media_solution_subject(subject: str) -> bool:
    if MEDIA_SOLUTION_SUBJECT in subject:
        return True
    core = normalize(subject)
    return all(k in core for k in ("media solution", "missions recadrage", "lot"))


def has_provider_link(body: str, found_links: list[dict[str, str]] | None = None) -> bool:
    if found_links is None:
        found_links = links.extract(body)
    if found_links:
        return True  # without lowering the whole body
    lowered = body.lower()
    return any(s in lowered for s in ("dropbox.com/scl/fo", "fromsmash.com/", "swisstransfer.com/d/"))


def detect_recadrage(
    subject: str, body: str, now: dt.datetime, found_links: list[dict[str, str]] | None = None, plain: str = ""
) -> Detection | None:
    if not subject or not body:
        return None
    if not (is_media_solution_subject(subject) and has_provider_link(body, found_links)):
        return None
    delivery_time = extract_delivery_time(subject, plain or plain_text(body), now)
    # The original needs a delivery time to call it a match; without one the email is neutral.
    return Detection(RECADRAGE, delivery_time) if delivery_time else None


def detect_desabo(subject: str, body: str, plain: str = "") -> Detection | None:
    if not body:
        return None
    plain = plain or plain_text(body)
    if "tarifs" not in plain.lower():
        return None  # cheap gate before normalising the whole body
    text = normalize(plain)
    core_subject = normalize(subject or "")
    has_dropbox_request = "https://www.dropbox.com/request/" in body.lower()
    if not ("journee" in text and "tarifs habituels" in text):
        return None
    if not ("desabonn" in text or "desabonn" in core_subject or has_dropbox_request):
        return None
    if any(k in text for k in DESABO_FORBIDDEN_KEYWORDS):
        return None
    urgent = any(k in text or k in core_subject for k in ("urgent", "urgence"))
    return Detection(DESABO, urgent=urgent)


def detect(subject: str, body: str, now: dt.datetime, found_links: list[dict[str, str]] | None = None) -> Detection:
    """Média Solution first, then DESABO; an empty Detection means a neutral email.

    `found_links`, when the caller already extracted them, saves a second extraction.
    """
    plain = plain_text(body)
    return (
        detect_recadrage(subject, body, now, found_links, plain) or detect_desabo(subject, body, plain) or Detection()
    )
