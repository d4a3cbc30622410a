from __future__ import annotations

from pathlib import Path

CORPUS = Path(__file__).parent / "corpus"


def eml(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def message(subject: str, body: str, sender: str = "missions@media-solution.example", msgid: str = "") -> bytes:
    """A minimal UTF-8 text message built by hand, for rule tests."""
    from email.header import Header
    from email.mime.text import MIMEText

    m = MIMEText(body, "plain", "utf-8")
    m["Subject"] = Header(subject, "utf-8")  # type: ignore[assignment]
    m["From"] = sender
    m["Date"] = "Tue, 03 Nov 2026 09:15:00 +0100"
    m["Message-ID"] = msgid or f"<{abs(hash((subject, body)))}@test.example>"
    return m.as_bytes()
