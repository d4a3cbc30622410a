"""Link extraction (reference §2) plus WeTransfer, Google Drive and OneDrive/SharePoint."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from delivery.r2 import normalize_url
from mail import links as mail_links
from mail.links import extract, provider_of
from mail.parsing import parse_message
from tests.mail.corpus import CORPUS, eml


def urls(text: str) -> list[str]:
    return [link["raw_url"] for link in extract(text)]


def test_each_provider_is_found_with_its_name():
    text = (
        "https://www.dropbox.com/scl/fo/a/b?rlkey=x&dl=0 https://fromsmash.com/Token1 "
        "https://www.swisstransfer.com/d/uuid-1 https://wetransfer.com/downloads/abc/def https://we.tl/t-xyz "
        "https://drive.google.com/file/d/1a/view https://1drv.ms/f/s!Ab https://x.sharepoint.com/:f:/s/P/E"
    )
    assert [link["provider"] for link in extract(text)] == [
        "dropbox",
        "fromsmash",
        "swisstransfer",
        "wetransfer",
        "wetransfer",
        "google_drive",
        "onedrive",
        "onedrive",
    ]


def test_dropbox_share_shapes_are_links():
    for path in ("scl/fo/a/b?rlkey=x", "scl/fi/a/f.jpg?rlkey=x", "s/abc/photo.jpg?dl=0", "request/AbC"):
        assert urls(f"voir https://www.dropbox.com/{path} ici") == [f"https://www.dropbox.com/{path}"]


def test_html_entities_are_unescaped():
    assert urls('<a href="https://www.dropbox.com/scl/fo/a/b?rlkey=x&amp;dl=0">x</a>') == [
        "https://www.dropbox.com/scl/fo/a/b?rlkey=x&dl=0"
    ]


def test_trailing_punctuation_and_quotes_are_stripped():
    assert urls("(https://fromsmash.com/Abcd1).") == ["https://fromsmash.com/Abcd1"]
    assert urls('"https://www.swisstransfer.com/d/u-1",') == ["https://www.swisstransfer.com/d/u-1"]
    assert urls("https://drive.google.com/file/d/1a/view?usp=x;") == ["https://drive.google.com/file/d/1a/view?usp=x"]


def test_balanced_parentheses_inside_a_url_are_kept():
    assert urls("https://www.dropbox.com/s/abc/photo(1).jpg") == ["https://www.dropbox.com/s/abc/photo(1).jpg"]


def test_dropbox_logo_and_avatar_images_are_dropped():
    text = (
        "https://www.dropbox.com/scl/fi/zz/MS.png?rlkey=a&raw=1 https://www.dropbox.com/scl/fi/zz/avatar_2.jpg?raw=1 "
        "https://www.dropbox.com/scl/fi/zz/shoot.jpg?raw=1"
    )
    assert urls(text) == ["https://www.dropbox.com/scl/fi/zz/shoot.jpg?raw=1"]


def test_duplicates_are_removed_keeping_first_order():
    text = "https://fromsmash.com/B1234 https://fromsmash.com/A1234 https://fromsmash.com/B1234"
    assert urls(text) == ["https://fromsmash.com/B1234", "https://fromsmash.com/A1234"]


def test_matching_is_case_insensitive_and_keeps_query_parameters():
    assert urls("HTTPS://WWW.DROPBOX.COM/s/X/y.jpg?dl=0&foo=1") == ["HTTPS://WWW.DROPBOX.COM/s/X/y.jpg?dl=0&foo=1"]


def test_footer_and_help_pages_of_provider_hosts_are_not_links():
    assert urls("https://wetransfer.com/ https://wetransfer.com/legal/terms https://www.dropbox.com/privacy") == []
    assert urls("https://support.google.com/drive https://www.google.com/") == []


def test_unsupported_hosts_and_empty_input_give_nothing():
    assert urls("https://example.com/file.zip") == []
    assert extract("") == []


def test_links_from_the_corpus_notifications():
    wt = parse_message(eml("wetransfer_notification.eml"))
    assert urls(wt.text) == ["https://wetransfer.com/downloads/4a5b6c7d8e9f/0123abcd", "https://we.tl/t-AbC123xYz"]
    shares = parse_message(eml("drive_onedrive_sharepoint.eml"))
    assert urls(shares.text) == [
        "https://drive.google.com/drive/folders/1AbCdEfGhIjK?usp=sharing",
        "https://drive.google.com/file/d/1ZyXwVu/view?usp=drive_link",
        "https://1drv.ms/f/s!AmBcDeF12345",
        "https://contoso.sharepoint.com/:f:/s/Photos/EaBcD?e=xyz",
    ]
    folder = parse_message(eml("recadrage_dropbox_folder.eml"))
    assert urls(folder.text) == ["https://www.dropbox.com/scl/fo/abc123def/AAbbCCdd?rlkey=k3y9x&dl=0"]


def test_provider_names_sub_domains():
    assert provider_of("https://eu.wetransfer.com/downloads/a/b") == "wetransfer"
    assert provider_of("https://dropbox.com.evil.example/s/a") == "unknown"


def test_dropbox_normalisation_forces_https_dl1_and_sorts_the_query():
    url = "http://WWW.Dropbox.com//scl/fo/a//b/?dl=0&rlkey=k&e=&rlkey=k&st=2"
    assert normalize_url(url, "dropbox") == "https://www.dropbox.com/scl/fo/a/b?dl=1&rlkey=k&st=2"


def test_dropbox_normalisation_undoes_double_escaped_ampersands():
    url = "https://www.dropbox.com/scl/fo/a/b?rlkey=k&amp%3Bdl=0"
    assert normalize_url(url, "dropbox") == "https://www.dropbox.com/scl/fo/a/b?dl=1&rlkey=k"


def test_other_providers_are_only_trimmed_and_unescaped():
    assert normalize_url(" https://fromsmash.com/T?a=1&amp;b=2 ", "fromsmash") == "https://fromsmash.com/T?a=1&b=2"


# Pieces a text is made of, so that generated texts hold URLs, near-URLs and their edges.
PIECES = st.sampled_from(
    [
        "http",
        "https",
        "HTTPS",
        "://",
        "s://",
        "www.",
        "dropbox.com",
        "fromsmash.com",
        "we.tl",
        "x.sharepoint.com",
        "example.org",
        "/scl/fo/a",
        "?dl=0",
        ":8080",
        "#x",
        " ",
        "\n",
        "<",
        '"',
        "é",
        "a",
        "-",
        ".",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(PIECES, max_size=30).map("".join))
@example("https://www.dropbox.com/scl/fo/a?dl=0")
@example("http://we.tl/x HTTPS://fromsmash.com/abcd")
@example("ahttps://dropbox.com://we.tl https://x.sharepoint.com:8080#x")
@example("s://dropbox.com http://")
def test_urls_are_found_where_a_full_scan_finds_them(text):
    assert list(mail_links.urls(text)) == [m.group(0) for m in mail_links.URL_RE.finditer(text)]


def test_urls_found_in_real_mail_are_those_of_a_full_scan():
    for path in sorted(CORPUS.glob("*.eml")):
        text = parse_message(path.read_bytes()).text
        assert list(mail_links.urls(text)) == [m.group(0) for m in mail_links.URL_RE.finditer(text)]
