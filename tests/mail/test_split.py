"""The boundary splitter reads well-formed mail exactly as the stdlib parser does, and declines the rest."""

from __future__ import annotations

import email
import email.message

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mail.parsing import extract_bodies, split_message
from tests.mail.corpus import CORPUS, eml


def tree(msg: email.message.Message) -> list[tuple[str, object, object]]:
    """Every part in walk order: content type, headers, and the payload as the stdlib decodes it."""
    return [
        (part.get_content_type(), part.items(), None if part.is_multipart() else part.get_payload(decode=True))
        for part in msg.walk()
    ]


def assert_same_as_stdlib(raw: bytes) -> bool:
    """True when the splitter took the message; then everything matches the stdlib parse."""
    split = split_message(raw)
    if split is None:
        return False
    reference = email.message_from_bytes(raw)
    assert tree(split) == tree(reference)
    assert extract_bodies(split, 1024 * 1024) == extract_bodies(reference, 1024 * 1024)
    return True


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.eml")), ids=lambda p: p.name)
def test_every_corpus_message_reads_as_with_the_stdlib(path):
    assert_same_as_stdlib(path.read_bytes())


def test_it_takes_the_usual_multipart_notifications():
    for name in ("recadrage_dropbox_folder.eml", "nested_with_attachment.eml", "desabo_urgent.eml"):
        assert assert_same_as_stdlib(eml(name)), name


def multipart(
    boundary: str, parts: list[bytes], newline: bytes = b"\r\n", preamble: bytes = b"", epilogue: bytes = b""
) -> bytes:
    nl = newline
    head = b"Subject: t" + nl + b'Content-Type: multipart/mixed; boundary="' + boundary.encode() + b'"' + nl + nl
    body = preamble + b"".join(b"--" + boundary.encode() + nl + p + nl for p in parts)
    return head + body + b"--" + boundary.encode() + b"--" + nl + epilogue


TEXT = b"Content-Type: text/plain; charset=utf-8\r\n\r\nBonjour https://fromsmash.com/Abcd1"


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(multipart("b", [TEXT])[: -len(b"--b--\r\n")], id="no closing delimiter"),
        pytest.param(multipart("b", [b"Content-Type: message/rfc822\r\n\r\n" + TEXT]), id="message/rfc822 part"),
        pytest.param(multipart("b", [TEXT]).replace(b"\r\n", b"\r"), id="bare CR line endings"),
        pytest.param(multipart("b", [b"\r\nno headers"]), id="a part without headers"),
        pytest.param(multipart("b", [TEXT, b""]), id="an empty part"),
        pytest.param(b"Subject: t\r\nContent-Type: multipart/mixed\r\n\r\n" + TEXT, id="no boundary parameter"),
        pytest.param(b"Subject: t\r\nnot a header\r\n\r\nbody", id="a broken header block"),
        pytest.param(b"Subject: t\r\n", id="headers only"),
        pytest.param(multipart("b", [TEXT]).replace(b"multipart/mixed", b"multipart/digest"), id="digest"),
    ],
)
def test_it_leaves_unusual_messages_to_the_stdlib(raw):
    assert split_message(raw) is None


def test_delimiters_count_only_at_the_start_of_a_line_and_with_nothing_after_them():
    inline = b"Content-Type: text/plain\r\n\r\nsee --b in the text\r\n--bx is not a delimiter\r\n--b-- neither"
    raw = multipart("b", [inline, TEXT])
    assert assert_same_as_stdlib(raw)
    split = split_message(raw)
    assert split is not None and len(split.get_payload()) == 2


def test_an_inner_boundary_that_starts_with_the_outer_one_is_content_of_the_outer_part():
    inner = multipart("b-inner", [TEXT, b"Content-Type: text/html\r\n\r\n<p>x</p>"])
    assert assert_same_as_stdlib(multipart("b", [inner, TEXT]))


_line_end = st.sampled_from([b"\r\n", b"\n"])
_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n-"), max_size=60)
_boundary = st.text(alphabet="abcXYZ0123456789'()+_,./:=?", min_size=1, max_size=30).filter(lambda b: b[-1] != " ")


@st.composite
def leaf(draw, nl: bytes):
    ctype = draw(st.sampled_from(["text/plain", "text/html", "application/pdf"]))
    charset = draw(st.sampled_from(["utf-8", "iso-8859-1", "windows-1252", "x-unknown"]))
    encoding = draw(st.sampled_from(["7bit", "8bit", "base64", "quoted-printable"]))
    disposition = draw(st.sampled_from([b"", b"Content-Disposition: attachment" + nl]))
    lines = draw(st.lists(_text, max_size=4))
    body = nl.join(line.encode("utf-8") for line in lines)
    if encoding == "base64":
        import base64

        body = base64.encodebytes(body).replace(b"\n", nl).rstrip()
    elif encoding == "quoted-printable":
        import quopri

        body = quopri.encodestring(body.replace(b"\r\n", b"\n")).replace(b"\n", nl)
    head = f"Content-Type: {ctype}; charset={charset}".encode() + nl + f"Content-Transfer-Encoding: {encoding}".encode()
    return head + nl + disposition + nl + body


@st.composite
def message(draw, depth: int = 0, nl: bytes | None = None):
    nl = nl or draw(_line_end)
    if depth >= 2 or draw(st.booleans()):
        parts = draw(st.lists(leaf(nl), min_size=1, max_size=3))
    else:
        parts = draw(st.lists(st.one_of(leaf(nl), message(depth + 1, nl)), min_size=1, max_size=3))
    boundary = draw(_boundary) + str(depth)
    preamble = draw(st.sampled_from([b"", b"This is a multi-part message." + nl]))
    epilogue = draw(st.sampled_from([b"", b"epilogue" + nl]))
    raw = multipart(boundary, parts, nl, preamble, epilogue)
    if depth:  # a nested multipart is a part: its own headers come first, no Subject
        return raw.split(nl, 1)[1]
    return raw


@settings(max_examples=500, deadline=None)
@given(raw=message())
def test_generated_multipart_mail_reads_as_with_the_stdlib(raw):
    assert assert_same_as_stdlib(raw)
