"""Parsing survives any input and decodes headers and bodies in every charset."""

from __future__ import annotations

import email.message
import hashlib
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mail.parsing import UnparseableMessage, base64_payload, clean_sender, decode_header_value, parse_message
from tests.mail.corpus import eml


def test_it_decodes_an_rfc2047_subject_and_qp_html():
    parsed = parse_message(eml("recadrage_dropbox_folder.eml"))
    assert parsed.subject == "Média Solution - Missions Recadrage - Lot 42"
    assert parsed.sender == "missions@media-solution.example"
    assert parsed.sender_raw.startswith("Média Solution")
    assert "à faire pour le 3/9/2026" in parsed.body_plain
    assert "rlkey=k3y9x&amp;dl=0" in parsed.body_html
    assert parsed.text == parsed.body_plain + "\n" + parsed.body_html


def test_it_decodes_windows_1252_bodies_and_subjects():
    parsed = parse_message(eml("recadrage_fromsmash_cp1252.eml"))
    assert parsed.subject == "Média Solution - Missions Recadrage - Lot 44"
    assert "à faire pour 14:30 s'il vous plaît" in parsed.body_plain
    assert "—" in parsed.body_plain


def test_it_reads_html_only_mail_into_the_html_body():
    parsed = parse_message(eml("desabo_html_only.eml"))
    assert parsed.body_plain == ""
    assert "tarifs habituels" in parsed.body_html


def test_it_skips_attachments_in_nested_multiparts():
    parsed = parse_message(eml("nested_with_attachment.eml"))
    assert "photo.jpg" in parsed.body_plain and "photo.jpg" in parsed.body_html
    assert "should-not-be-found" not in parsed.text
    assert parsed.sender_raw == "Élodie Martin <elodie@studio.example>"


def test_it_survives_broken_mime_unknown_charsets_and_raw_8bit_headers():
    parsed = parse_message(eml("malformed_mime.eml"))
    assert parsed.message_id == "<broken1@studio.example>"
    assert parsed.subject.startswith("Caf")
    assert "swisstransfer.com/d/broken-1" in parsed.text


def test_missing_headers_give_empty_values_and_the_original_md5_identity():
    parsed = parse_message(eml("no_message_id.eml"))
    assert parsed.message_id == "" and parsed.date_header == "" and parsed.sent_at is None
    expected = hashlib.md5(b"|Sans identifiant|").hexdigest()
    assert parsed.email_id == expected
    assert parsed.identity == expected


def test_identity_is_the_message_id_when_present():
    parsed = parse_message(eml("desabo_urgent.eml"))
    assert parsed.identity == "<desabo2@agence.example>"
    assert (
        parsed.email_id
        == hashlib.md5(f"<desabo2@agence.example>|{parsed.subject}|{parsed.date_header}".encode()).hexdigest()
    )


def test_html_is_capped_but_plain_text_is_not():
    big_html = b"<p>" + b"x" * 5000 + b"</p>"
    raw = b"Subject: big\r\nContent-Type: text/html\r\n\r\n" + big_html
    parsed = parse_message(raw, max_html_bytes=1000)
    assert len(parsed.body_html) == 1000 and parsed.html_truncated


@pytest.mark.parametrize("raw", [b"", b"  \r\n", bytearray(b"\t\x0b\x0c\r\n ")])
def test_an_empty_message_is_unparseable(raw):
    with pytest.raises(UnparseableMessage):
        parse_message(raw)


def test_sender_is_the_first_address_lower_cased():
    assert clean_sender("Jean <Jean.Dupont@Example.COM>") == "jean.dupont@example.com"
    assert clean_sender("Jean.Dupont@Example.COM") == "jean.dupont@example.com"
    assert clean_sender("no address") == ""


def test_folded_and_multi_word_encoded_headers_are_joined():
    assert decode_header_value("=?utf-8?q?Caf=C3=A9?=\r\n =?utf-8?q?_cr=C3=A8me?=") == "Café crème"


def test_nul_bytes_and_lone_surrogates_never_reach_the_database():
    raw = b"Subject: a\x00b\r\nFrom: x\x00@y.example\r\nContent-Type: text/plain\r\n\r\nbody\x00end"
    parsed = parse_message(raw)
    assert "\x00" not in parsed.subject + parsed.sender_raw + parsed.body_plain
    assert parsed.body_plain == "bodyend"


def test_large_messages_are_parsed_without_their_attachment_bodies(monkeypatch):
    from email.mime.application import MIMEApplication
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText

    from mail import parsing

    monkeypatch.setattr(parsing, "SLIM_ABOVE_BYTES", 1000)
    outer = MIMEMultipart("mixed")
    inner = MIMEMultipart("alternative")
    inner.attach(MIMEText("voir https://fromsmash.com/Abcd1", "plain", "utf-8"))
    inner.attach(MIMEText("<p>voir</p>", "html", "utf-8"))
    outer.attach(inner)
    outer.attach(MIMEApplication(b"https://fromsmash.com/Hidden9 " * 500, "zip"))
    outer["Subject"] = "Gros"
    raw = outer.as_bytes()
    slim = parsing.without_attachment_bodies(raw)
    assert len(slim) < 2000 < len(raw)
    parsed = parse_message(raw)
    assert "Abcd1" in parsed.body_plain and parsed.body_html == "<p>voir</p>"
    assert "Hidden9" not in parsed.text
    monkeypatch.setattr(parsing, "SLIM_ABOVE_BYTES", len(raw))
    assert parse_message(raw) == parsed  # what is read is what the whole message gives


def _stdlib_decoded(encoded):
    part = email.message.Message()
    part["Content-Transfer-Encoding"] = "base64"
    part.set_payload(encoded)
    return part.get_payload(decode=True)


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "aGVsbG8gd29ybGQ=\r\n",
        "aGVs\r\nbG8g\nd29y\rbGQ=",  # CRLF, LF and bare CR line breaks
        "aGVsbG8gd29ybGQ",  # padding missing
        "aGVsbG8gd29ybG",  # one padding character missing
        "aGVsbG8gd29ybGQ=a",  # one character too many: cannot be decoded
        "aGVs bG8g\td29y\x0bbGQ=",  # other white space
        "aGVs!bG8gd29ybGQ=",  # a character outside the alphabet
        "aGVs=bG8gd29ybGQ=",  # padding in the middle
        "aGVsbG8gd29ybGQ===",  # too much padding
    ],
)
def test_base64_bodies_decode_as_with_the_stdlib(encoded):
    assert base64_payload(encoded) == _stdlib_decoded(encoded)


@settings(max_examples=500, deadline=None)
@given(encoded=st.text(alphabet=string.ascii_letters + string.digits + "+/=\r\n \t\x0b\x0c!-", max_size=200))
def test_any_ascii_base64_body_decodes_as_with_the_stdlib(encoded):
    assert base64_payload(encoded) == _stdlib_decoded(encoded)
