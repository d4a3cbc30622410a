"""Turn raw message bytes into the fields the pipeline needs, surviving any input.

Parsing uses the stdlib `compat32` policy: measured here it is about ten times faster than
`email.policy.default` (see bench/README.md), and headers are decoded explicitly below
(RFC 2047, unknown charsets, raw 8-bit bytes) so nothing is lost by not using the new API.

Well-formed multipart mail, the usual case, skips the stdlib's line-by-line body parser:
`split_message` cuts it at its boundaries with `bytes.find` and gives each part's headers to
the stdlib header parser, building the same `Message` tree. Anything it is not sure to read
exactly as the stdlib does goes to the stdlib parser instead.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email
import email.errors
import email.header
import email.message
import email.parser
import email.utils
import hashlib
import itertools
import logging
import re
from dataclasses import dataclass

logger = logging.getLogger(__name__)

_SENDER_RE = re.compile(r"<([^>]+)>|([^\s<>]+@[^\s<>]+)")
_FOLDING_RE = re.compile(r"\r?\n[ \t]+")
_NOT_BASE64_RE = re.compile(r"[^A-Za-z0-9+/=\s]")
# What a broken message can make the stdlib raise while we read it.
_PARSE_ERRORS = (
    ValueError,
    LookupError,
    TypeError,
    AttributeError,
    IndexError,
    UnicodeError,
    AssertionError,
    email.errors.MessageError,
)


class UnparseableMessage(Exception):
    pass


@dataclass
class ParsedMessage:
    message_id: str
    subject: str
    sender: str
    sender_raw: str
    date_header: str
    sent_at: dt.datetime | None
    body_plain: str
    body_html: str
    html_truncated: bool = False

    @property
    def text(self) -> str:
        """Plain text and HTML together, as detectors and link extraction see them."""
        return self.body_plain + "\n" + self.body_html

    @property
    def identity(self) -> str:
        return self.message_id[:255] if self.message_id else self.email_id

    @property
    def email_id(self) -> str:
        """The original app's id: md5 of "Message-ID|decoded Subject|Date header"."""
        key = f"{self.message_id}|{self.subject}|{self.date_header}"
        return hashlib.md5(key.encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest()


def storable(text: str) -> str:
    """Text every database accepts: no NUL characters, no lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset, else UTF-8, else Windows-1252; never raises."""
    for candidate in (charset, "utf-8"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeError):
            continue
    return data.decode("cp1252", errors="replace")


def decode_header_value(value: object) -> str:
    if value is None:
        return ""
    text = _FOLDING_RE.sub(" ", str(value)) if isinstance(value, str) else value
    parts = email.header.decode_header(text)  # type: ignore[arg-type]
    decoded = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes) and charset == "unknown-8bit":
            # Raw 8-bit bytes in a header: decode them, then the encoded words they may hold.
            text8 = decode_bytes(chunk, None)
            decoded.append(decode_header_value(text8) if "=?" in text8 else text8)
        elif isinstance(chunk, bytes):
            decoded.append(decode_bytes(chunk, charset))
        else:
            decoded.append(chunk)
    return "".join(decoded).strip()


def clean_sender(from_header: str) -> str:
    match = _SENDER_RE.search(from_header)
    if not match:
        return ""
    return (match.group(1) or match.group(2)).strip().lower()


def parse_date(value: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def _is_attachment(part: email.message.Message) -> bool:
    return "attachment" in str(part.get("Content-Disposition", "")).lower()


def _payload_bytes(part: email.message.Message) -> bytes:
    encoded = part.get_payload()
    cte = str(part.get("Content-Transfer-Encoding", ""))
    if cte.strip().lower() == "base64" and isinstance(encoded, str):
        if _NOT_BASE64_RE.search(encoded, 0, 2048):
            # Mislabelled: plain text declared as base64. Decoding would turn it to noise.
            return encoded.encode("utf-8", "surrogateescape")
        if cte.lower() == "base64" and encoded.isascii():
            return base64_payload(encoded)
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def base64_payload(encoded: str) -> bytes:
    """What `get_payload(decode=True)` returns for an ASCII base64 payload, with fewer copies.

    The stdlib encodes the text, splits it into lines, joins them and decodes (its
    `email._encoded_words.decode_b`): four copies of a part that is megabytes long in a
    large message. Same steps here, the line breaks dropped in one copy; the fallbacks are
    the stdlib's, in its order (`tests/mail/test_parsing.py` compares the two).
    """
    data = encoded.encode("ascii").translate(None, b"\r\n")
    padding = b"==="[: 4 - len(data) % 4] if len(data) % 4 else b""
    for attempt, strict in ((padding, True), (b"", False), (b"==", False)):
        try:
            return base64.b64decode(data + attempt if attempt else data, validate=strict)
        except binascii.Error:
            continue
    return data  # cannot be decoded: the stdlib gives the encoded bytes back


def _charset(part: email.message.Message) -> str | None:
    try:
        return part.get_content_charset()
    except _PARSE_ERRORS:
        return None


def extract_bodies(msg: email.message.Message, max_html_bytes: int) -> tuple[str, str, bool]:
    plain: list[str] = []
    html: list[str] = []
    html_budget = max_html_bytes
    truncated = False
    parts = msg.walk() if msg.is_multipart() else [msg]
    for part in parts:
        if part.is_multipart() or _is_attachment(part):
            continue
        ctype = part.get_content_type()
        if ctype == "text/html":
            data = _payload_bytes(part)
            if len(data) > html_budget:
                data, truncated = data[:html_budget], True
            html_budget -= len(data)
            html.append(decode_bytes(data, _charset(part)))
        elif ctype == "text/plain" or (not msg.is_multipart() and part.get_content_maintype() == "text"):
            plain.append(decode_bytes(_payload_bytes(part), _charset(part)))
    return "".join(plain), "".join(html), truncated


_HEADER_END_RE = re.compile(rb"\r?\n\r?\n")
_NEWLINE_RE = re.compile(rb"\r?\n")
# Above this size, attachment bodies are cut out before parsing (they are never read, and
# the parser would hold several copies of them).
SLIM_ABOVE_BYTES = 2 * 1024 * 1024


def without_attachment_bodies(raw: bytes | bytearray) -> bytes:
    """The message with the bodies of its non-text leaf parts removed, found by boundaries.

    Works on offsets into `raw` and collects views of the pieces it keeps, so they are
    copied once (into the result) and the large parts it drops never are.
    """
    out: list[bytes | memoryview] = []
    _slim(raw, memoryview(raw), 0, len(raw), out)
    return b"".join(out)


def _slim(raw: bytes | bytearray, view: memoryview, start: int, end: int, out: list[bytes | memoryview]) -> None:
    """Append the pieces of `raw[start:end]` to keep to `out` (views of `raw` where possible)."""
    header_end = _HEADER_END_RE.search(raw, start, end)
    if header_end is None:
        out.append(view[start:end])
        return
    head = bytes(view[start : header_end.end()])
    msg = email.parser.BytesHeaderParser().parsebytes(head)
    maintype = msg.get_content_maintype()
    if maintype in ("text", "message") or not msg.keys():
        out.append(view[start:end])
        return
    if maintype != "multipart":
        out += [head, b"\r\n"]
        return
    boundary = msg.get_boundary()
    if not boundary:
        out.append(view[start:end])
        return
    delimiter = b"--" + boundary.encode("ascii", "replace")
    at = raw.find(delimiter, header_end.end(), end)
    if at < 0:
        out.append(view[start:end])
        return
    out += [head, view[header_end.end() : at]]
    while at >= 0:
        body_start = at + len(delimiter)
        following = raw.find(delimiter, body_start, end)
        body_end = following if following >= 0 else end
        out.append(delimiter)
        if raw.startswith(b"--", body_start):  # the closing delimiter and the epilogue
            out.append(view[body_start:end])
            break
        newline = _NEWLINE_RE.match(raw, body_start)
        part_start = newline.end() if newline else body_start
        out.append(view[body_start:part_start])
        _slim(raw, view, part_start, body_end, out)
        at = following


class _Unusual(Exception):
    """The message is not one `split_message` reads exactly as the stdlib parser would."""


_MAX_DEPTH = 10
_DELIMITER_END_RE = re.compile(rb"(--)?[ \t]*(\r\n|\n|$)")


def split_message(raw: bytes | bytearray) -> email.message.Message | None:
    """The stdlib's `Message` tree of a well-formed message, built by boundaries; None otherwise."""
    if b"\r" in raw and raw.count(b"\r") != raw.count(b"\r\n"):
        return None  # bare CR line endings: the stdlib's rules
    try:
        return _split(raw, 0, len(raw), 0)
    except (_Unusual, *_PARSE_ERRORS):
        return None


def _headers(raw: bytes | bytearray, start: int, end: int) -> tuple[email.message.Message, int]:
    header_end = _HEADER_END_RE.search(raw, start, end)
    if header_end is None or raw[start : start + 1] in (b"\r", b"\n"):
        raise _Unusual
    msg = email.parser.BytesHeaderParser().parsebytes(raw[start : header_end.end()])
    if msg.defects or not msg.keys():
        raise _Unusual
    return msg, header_end.end()


def _split(raw: bytes | bytearray, start: int, end: int, depth: int) -> email.message.Message:
    msg, body_start = _headers(raw, start, end)
    maintype = msg.get_content_maintype()
    if maintype == "message" or depth > _MAX_DEPTH:
        raise _Unusual
    if maintype != "multipart":
        # Decoded from a view: the part's bytes are not copied before they become text.
        msg.set_payload(str(memoryview(raw)[body_start:end], "ascii", "surrogateescape"))
        return msg
    boundary = msg.get_boundary()
    if not boundary or msg.get_content_subtype() == "digest":
        raise _Unusual
    msg.set_payload([])
    for part_start, part_end in _part_ranges(raw, body_start, end, b"--" + boundary.encode("ascii", "strict")):
        msg.attach(_split(raw, part_start, part_end, depth + 1))
    return msg


def _part_ranges(raw: bytes | bytearray, start: int, end: int, delimiter: bytes) -> list[tuple[int, int]]:
    """Where each body part is: between delimiter lines, without the line end before the next."""
    lines: list[tuple[int, int, bool]] = []  # (delimiter line start, its end, closing)
    at = raw.find(delimiter, start, end)
    while at >= 0:
        if at == start or raw[at - 1] == 0x0A:
            rest = _DELIMITER_END_RE.match(raw, at + len(delimiter), end)
            if rest and (rest.group(2) or rest.end() == end):
                lines.append((at, rest.end(), bool(rest.group(1))))
                if rest.group(1):
                    break
        at = raw.find(delimiter, at + 1, end)
    if not lines or not lines[-1][2] or any(closing for _, _, closing in lines[:-1]):
        raise _Unusual
    ranges = []
    for (_, part_start, _), (next_line, _, _) in itertools.pairwise(lines):
        part_end = next_line - (2 if raw[next_line - 2 : next_line] == b"\r\n" else 1)
        if part_end <= part_start:
            raise _Unusual
        ranges.append((part_start, part_end))
    if not ranges:
        raise _Unusual
    return ranges


def _message_tree(raw: bytes | bytearray) -> email.message.Message:
    """The parsed message; the slimmed copy of a large one is dropped once the tree is built."""
    source = without_attachment_bodies(raw) if len(raw) > SLIM_ABOVE_BYTES else raw
    return split_message(source) or email.message_from_bytes(source)


def parse_message(raw: bytes | bytearray, max_html_bytes: int = 1024 * 1024) -> ParsedMessage:
    if not raw or raw.isspace():  # not raw.strip(), which would copy the whole message
        raise UnparseableMessage("empty message")
    try:
        msg = _message_tree(raw)
        subject = decode_header_value(msg.get("Subject"))
        sender_raw = decode_header_value(msg.get("From"))
        date_header = decode_header_value(msg.get("Date"))
        body_plain, body_html, truncated = extract_bodies(msg, max_html_bytes)
        message_id = decode_header_value(msg.get("Message-ID"))
    except _PARSE_ERRORS as e:
        raise UnparseableMessage(f"{type(e).__name__}: {e}") from e
    subject, sender_raw, date_header, message_id, body_plain, body_html = map(
        storable, (subject, sender_raw, date_header, message_id, body_plain, body_html)
    )
    if truncated:
        logger.warning("HTML content truncated (exceeded %d bytes limit)", max_html_bytes)
    return ParsedMessage(
        message_id=message_id,
        subject=subject,
        sender=clean_sender(sender_raw),
        sender_raw=sender_raw,
        date_header=date_header,
        sent_at=parse_date(date_header),
        body_plain=body_plain,
        body_html=body_html,
        html_truncated=truncated,
    )
