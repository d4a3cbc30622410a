"""Realistic order emails for the demo and the benchmarks, each with the decision it should get.

Builders make French multipart mail like the real notifications (text and HTML parts,
base64 on the wire, optional attachment). `demo_samples()` is the demo's set: every
detector and link provider, DESABO variants, neutral mail with and without links, replies,
a subject-group duplicate and an exact copy. `mixed(n)` is the benchmarks' mix of about
8 KB messages.
"""

from __future__ import annotations

import email.utils
import secrets
from dataclasses import dataclass
from email.mime.application import MIMEApplication
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

MEDIA_SOLUTION = "Média Solution <missions@media-solution.example>"
RECADRAGE_SUBJECT = "Média Solution - Missions Recadrage - Lot {n}"
FILLER = (
    "Merci de respecter le cahier des charges habituel : format 4:5, fond blanc, ombres conservées, "
    "export en JPEG qualité 90. Les fichiers sources restent disponibles pendant sept jours. "
)


@dataclass(frozen=True)
class Sample:
    """An email to append, the decision it should reach, and whether it makes a webhook."""

    label: str
    raw: bytes
    subject: str
    expected: str  # the Email row's decision; "" for an exact copy, which adds no row

    @property
    def webhook(self) -> bool:
        return self.expected == "delivered"


def link(provider: str, n: int) -> str:
    """A share link of `provider`, unique for `n`."""
    return {
        "dropbox": f"https://www.dropbox.com/scl/fo/m{n:07x}/AAB{n}cD?rlkey=r{n:05d}x&dl=0",
        "dropbox_file": f"https://www.dropbox.com/scl/fi/f{n:07x}/brief-lot-{n}.zip?rlkey=q{n:05d}&dl=0",
        "dropbox_request": f"https://www.dropbox.com/request/Req{n:06d}Ab",
        "fromsmash": f"https://fromsmash.com/Lot{n}-Ms",
        "swisstransfer": f"https://www.swisstransfer.com/d/6f1d2c3b-{n:04x}-4bbb-8ccc-1234567890ab",
        "wetransfer": f"https://wetransfer.com/downloads/{n:012x}a1b2/c3d4e5",
        "we.tl": f"https://we.tl/t-Lot{n}xYz",
        "google_drive": f"https://drive.google.com/drive/folders/1AbC{n}dEfG?usp=sharing",
        "onedrive": f"https://1drv.ms/f/s!AmBcDeF{n}",
    }[provider]


def build(
    subject: str,
    text: str,
    sender: str = MEDIA_SOLUTION,
    html_only: bool = False,
    attachment: bytes = b"",
    size_kb: float = 0,
    message_id: str = "",
) -> bytes:
    """A multipart message: text and HTML alternatives (or HTML alone), an optional PDF, padding
    to about `size_kb` KB on the wire."""
    body = text
    if size_kb:
        # Two base64 parts carry the text about 2.7 times over.
        body += "\n\n" + FILLER * max(0, int((size_kb * 1024 - 1200 - len(attachment) * 1.37) / 2.75 / len(FILLER)))
    html = "".join(f"<p>{_linkify(line)}</p>" for line in body.split("\n") if line.strip())
    alternative = MIMEMultipart("alternative")
    if not html_only:
        alternative.attach(MIMEText(body, "plain", "utf-8"))
    alternative.attach(MIMEText(f"<html><body>{html}</body></html>", "html", "utf-8"))
    message = alternative
    if attachment:
        message = MIMEMultipart("mixed")
        message.attach(alternative)
        message.attach(MIMEApplication(attachment, "pdf", Name="bon-de-commande.pdf"))
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = "commandes@atelier.example"
    message["Date"] = email.utils.formatdate(localtime=True)
    message["Message-ID"] = message_id or f"<{secrets.token_hex(8)}@{sender.rsplit('@', 1)[-1].rstrip('>')}>"
    return message.as_bytes()


def _linkify(line: str) -> str:
    words = [f'<a href="{w}">{w}</a>' if w.startswith("https://") else w for w in line.split(" ")]
    return " ".join(words)


def pdf(n: int, size: int = 2048) -> bytes:
    head = f"%PDF-1.4\n% bon de commande lot {n}\n".encode()
    return head + bytes((n + i) % 251 for i in range(size - len(head)))


def recadrage(
    n: int,
    provider: str = "dropbox",
    when: str = "à faire pour 14h30",
    size_kb: float = 0,
    html_only: bool = False,
    attachment: bytes = b"",
) -> bytes:
    text = (
        f"Bonjour,\n\nVoici le lot {n} de la mission recadrage, {when}.\n"
        f"Les fichiers sont ici : {link(provider, n)}\n\nBonne journée,\nL'équipe Média Solution"
    )
    return build(RECADRAGE_SUBJECT.format(n=n), text, size_kb=size_kb, html_only=html_only, attachment=attachment)


def desabo_text(n: int, urgent: bool) -> str:
    ask = "C'est urgent : pouvez-vous" if urgent else "Pouvez-vous"
    return (
        f"Bonjour,\n\n{ask} nous réserver une journée complète aux tarifs habituels "
        f"pour le dossier {n} ?\nVos disponibilités : {link('dropbox_request', n)}\n\n"
        "Pour ne plus recevoir ces demandes, désabonnez-vous depuis votre espace.\nCordialement,\nAgence Planning"
    )


def desabo(n: int, urgent: bool = False, size_kb: float = 0, html_only: bool = False) -> bytes:
    subject = f"{'URGENT - ' if urgent else ''}Disponibilité journée dossier {n}"
    sender = "Agence Planning <planning@agence.example>"
    return build(subject, desabo_text(n, urgent), sender=sender, size_kb=size_kb, html_only=html_only)


def neutral(n: int, provider: str | None = "wetransfer", size_kb: float = 0) -> bytes:
    if provider:
        subject = f"Nouveau transfert : photos catalogue {n}"
        text = f"Bonjour,\n\nVous avez reçu des fichiers : {link(provider, n)}\nIls expirent dans 7 jours."
    else:
        subject = f"Votre relevé mensuel n° {n}"
        text = "Bonjour,\n\nVotre relevé mensuel est disponible dans votre espace client."
    sender = "Studio Client <client@studio.example>"
    return build(subject, text, sender=sender, size_kb=size_kb)


def _subject(raw: bytes) -> str:
    import email as email_package
    from email.header import decode_header, make_header

    return str(make_header(decode_header(email_package.message_from_bytes(raw)["Subject"])))


def sample(label: str, raw: bytes, expected: str) -> Sample:
    return Sample(label, raw, _subject(raw), expected)


def demo_samples(base: int = 100) -> list[Sample]:
    """About thirty emails covering what the service decides while the sending window is open."""
    n = base
    first = recadrage(n, "dropbox", "à faire pour 14h30")
    copied = recadrage(n + 1, "fromsmash", "à faire pour le 05/11/2026 à 09h15")
    delivered = [
        sample("recadrage, Dropbox folder, 14h30", first, "delivered"),
        sample("recadrage, FromSmash, dated delivery", copied, "delivered"),
        sample("recadrage, SwissTransfer, 17:45", recadrage(n + 2, "swisstransfer", "à faire pour 17:45"), "delivered"),
        sample("recadrage, WeTransfer, before 18h", recadrage(n + 3, "wetransfer", "livraison avant 18h"), "delivered"),
        sample("recadrage, we.tl short link", recadrage(n + 4, "we.tl", "à faire pour 11h"), "delivered"),
        sample("recadrage, Google Drive", recadrage(n + 5, "google_drive", "à faire pour 16h00"), "delivered"),
        sample("recadrage, OneDrive", recadrage(n + 6, "onedrive", "à faire pour 10h45"), "delivered"),
        sample("recadrage, Dropbox file", recadrage(n + 7, "dropbox_file", "à faire pour 15h"), "delivered"),
        sample("recadrage with a PDF attachment", recadrage(n + 8, attachment=pdf(n + 8)), "delivered"),
        sample(
            "recadrage, HTML only", recadrage(n + 9, "fromsmash", "à faire pour 13h15", html_only=True), "delivered"
        ),
        sample(
            "URGENCE recadrage (routing rule)",
            build(
                "URGENCE " + RECADRAGE_SUBJECT.format(n=n + 10),
                f"Urgent : lot {n + 10}, fichiers {link('swisstransfer', n + 10)} merci.",
            ),
            "delivered",
        ),
        sample("recadrage, long order", recadrage(n + 11, size_kb=8), "delivered"),
        sample("DESABO", desabo(n + 12), "delivered"),
        sample("DESABO, urgent", desabo(n + 13, urgent=True), "delivered"),
        sample("DESABO, HTML only", desabo(n + 14, html_only=True), "delivered"),
        sample("DESABO, long", desabo(n + 15, size_kb=8), "delivered"),
        sample("neutral, WeTransfer notification", neutral(n + 16, "wetransfer"), "delivered"),
        sample("neutral, Google Drive share", neutral(n + 17, "google_drive"), "delivered"),
        sample("neutral, OneDrive share", neutral(n + 18, "onedrive"), "delivered"),
        sample(
            "recadrage subject without a delivery time (neutral)",
            recadrage(n + 19, "dropbox", "dès que possible"),
            "delivered",
        ),
    ]
    skipped = [
        sample("statement without links", neutral(n + 20, None), "skipped_no_links"),
        sample("newsletter without links", neutral(n + 21, None, size_kb=6), "skipped_no_links"),
        sample(
            "reply (RE:)",
            build("RE: " + RECADRAGE_SUBJECT.format(n=n), f"Bien reçu pour le lot {n}, merci. {link('dropbox', n)}"),
            "skipped_reply",
        ),
        sample(
            "forward (TR:)",
            build("TR: " + RECADRAGE_SUBJECT.format(n=n + 1), f"Pour info : {link('fromsmash', n + 1)}"),
            "skipped_reply",
        ),
        sample(
            "same Lot sent again (subject-group duplicate)",
            recadrage(n, "dropbox", "à faire pour 18h"),
            "skipped_duplicate_group",
        ),
    ]
    # The copy comes before later mail, so their decisions mean it was looked at too.
    copy = sample("exact copy of an earlier email (same Message-ID)", copied, "")
    return [*delivered[:12], copy, *delivered[12:], *skipped]


def outside_window_samples(base: int = 200) -> list[Sample]:
    """Sent while the sending window is closed: a recadrage is skipped, an urgent DESABO waits."""
    return [
        sample("recadrage outside the sending window", recadrage(base, "dropbox"), "skipped_outside_window"),
        sample("urgent DESABO outside the sending window", desabo(base + 1, urgent=True), "held"),
    ]


def mixed(n: int, size_kb: float = 8) -> Sample:
    """Message `n` of the benchmarks' mix: 60 % recadrage (every provider, one in ten with an
    attachment), 20 % DESABO, 15 % neutral with a link, 5 % without a link."""
    kind = n % 20
    providers = ("dropbox", "fromsmash", "swisstransfer", "wetransfer", "we.tl", "google_drive", "onedrive")
    if kind < 12:
        attachment = pdf(n) if kind in (3, 9) else b""
        raw = recadrage(n, providers[n % len(providers)], size_kb=size_kb, attachment=attachment)
        return sample("recadrage", raw, "delivered")
    if kind < 16:
        return sample("DESABO", desabo(n, urgent=kind == 15, size_kb=size_kb), "delivered")
    if kind < 19:
        return sample("neutral", neutral(n, providers[n % len(providers)], size_kb=size_kb), "delivered")
    return sample("neutral without link", neutral(n, None, size_kb=size_kb), "skipped_no_links")
