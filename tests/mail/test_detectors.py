"""The detectors and subject rules of reference §1.7-1.10, one named test per rule."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from mail.detectors import DESABO, RECADRAGE, detect, detect_desabo, detect_recadrage, extract_delivery_time
from mail.parsing import parse_message
from mail.subjects import is_reply, scoped_group, subject_group
from tests.mail.corpus import eml

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
NOW = dt.datetime(2026, 11, 3, 12, 35, tzinfo=PARIS)
SUBJECT = "Média Solution - Missions Recadrage - Lot 7"
LINK = "https://www.dropbox.com/scl/fo/a/b?rlkey=x&dl=0"


def time_of(body: str, subject: str = SUBJECT) -> str:
    found = detect_recadrage(subject, f"{body} {LINK}", NOW)
    return found.delivery_time if found else ""


# §1.7 recadrage
def test_recadrage_needs_a_provider_link():
    assert detect_recadrage(SUBJECT, "à faire pour 9h", NOW) is None


def test_recadrage_needs_the_media_solution_subject():
    assert detect_recadrage("Missions diverses", f"à faire pour 9h {LINK}", NOW) is None


def test_recadrage_subject_matches_without_accents_and_case():
    assert time_of("à faire pour 9h", "media solution - MISSIONS recadrage - lot 3") == "09h00"


def test_recadrage_empty_subject_or_body_is_no_match():
    assert detect_recadrage("", LINK, NOW) is None
    assert detect_recadrage(SUBJECT, "", NOW) is None


def test_urgence_in_the_subject_means_one_hour_from_now():
    assert time_of("à faire pour le 3/9/2026 à 9h05", "URGENCE " + SUBJECT) == "13h35"


def test_date_and_time_with_h():
    assert time_of("à faire pour le 3/9/2026 à 9h05") == "le 03/09/2026 à 09h05"


def test_date_and_time_with_colon():
    assert time_of("à faire pour le 3/9/2026 à 9:05") == "le 03/09/2026 à 09h05"


def test_date_and_time_accepts_a_without_accent_and_a_doubled_a():
    assert time_of("a faire pour le 03/09/2026 a a 14h") == "le 03/09/2026 à 14h00"


def test_time_only_with_h():
    assert time_of("à faire pour 9h") == "09h00"
    assert time_of("à faire pour à 9h5") == "09h05"


def test_time_only_with_colon():
    assert time_of("À faire pour 14:30") == "14h30"


def test_permissive_fallback_takes_a_time_anywhere():
    assert time_of("Livraison souhaitée 11h51 au plus tard") == "11h51"
    assert time_of("Livraison souhaitée vers 16:45") == "16h45"


def test_without_a_time_the_email_is_neutral():
    assert detect_recadrage(SUBJECT, f"Voici le lot {LINK}", NOW) is None


# W-14, fixed
def test_w14_durations_in_prose_are_not_times():
    assert time_of("Merci de livrer sous 24h, ou en 2h si possible") == ""
    assert detect_recadrage(SUBJECT, parse_message(eml("recadrage_duration_only.eml")).text, NOW) is None


def test_w14_hours_and_minutes_are_range_checked():
    assert time_of("à faire pour 25h") == ""
    assert time_of("à faire pour 9h75") == ""
    assert time_of("à faire pour 25h, sinon à 18h") == "18h00"


# §1.8 DESABO
DESABO_BODY = "Bonjour, la journée aux tarifs habituels ? Pour vous désabonner répondez STOP."


def test_desabo_matches_required_keywords():
    assert detect_desabo("Dispo", DESABO_BODY) is not None


def test_desabo_accepts_desabonn_in_the_subject_only():
    assert detect_desabo("Désabonnement", "La journée aux tarifs habituels ?") is not None


def test_desabo_accepts_a_dropbox_request_link_instead_of_desabonn():
    body = "La journée aux tarifs habituels ? https://www.dropbox.com/request/Ab1"
    assert detect_desabo("Dispo", body) is not None


def test_desabo_only_desabonner_is_not_enough():
    assert detect_desabo("Dispo", "Pour vous désabonner répondez STOP.") is None


def test_desabo_forbidden_keywords_block_the_match():
    for word in ("annulation", "facturation", "facture", "moment", "référence client", "total HT"):
        assert detect_desabo("Dispo", f"{DESABO_BODY} {word}") is None, word


def test_desabo_urgent_flag_from_subject_or_body():
    assert detect_desabo("URGENT dispo", DESABO_BODY).urgent  # type: ignore[union-attr]
    assert detect_desabo("Dispo", DESABO_BODY + " urgence").urgent  # type: ignore[union-attr]
    assert not detect_desabo("Dispo", DESABO_BODY).urgent  # type: ignore[union-attr]


def test_media_solution_is_checked_before_desabo():
    body = f"journée aux tarifs habituels, désabonnement. à faire pour 9h {LINK}"
    assert detect(SUBJECT, body, NOW).detector == RECADRAGE
    assert detect("Dispo", body, NOW).detector == DESABO
    assert detect("Bonjour", "rien", NOW).detector == ""


def test_corpus_detections():
    cases = {
        "recadrage_dropbox_folder.eml": (RECADRAGE, "le 03/09/2026 à 09h05"),
        "recadrage_urgence_swisstransfer.eml": (RECADRAGE, "13h35"),
        "recadrage_fromsmash_cp1252.eml": (RECADRAGE, "14h30"),
        "desabo_html_only.eml": (DESABO, ""),
        "desabo_urgent.eml": (DESABO, ""),
        "wetransfer_notification.eml": ("", ""),
    }
    for name, expected in cases.items():
        parsed = parse_message(eml(name))
        found = detect(parsed.subject, parsed.text, NOW)
        assert (found.detector, found.delivery_time) == expected, name


# §1.9-1.10 replies and subject groups
def test_reply_and_forward_prefixes_are_replies():
    for subject in ("Re: x", "RE : x", "Fw: x", "Fwd: x", "TR: x", "RV: x", "Réf: x", "confirmation: x", "Re: Fwd: x"):
        assert is_reply(subject), subject


def test_w13_surrounding_whitespace_is_not_a_reply():
    assert not is_reply("  Média Solution - Missions Recadrage - Lot 7  ")


def test_w13_accented_re_is_a_reply():
    assert is_reply("Ré: Lot 7")


def test_subject_groups():
    assert (
        subject_group("Re: Média Solution - Missions Recadrage - Lot 42") == "media_solution_missions_recadrage_lot_42"
    )
    assert subject_group("Photos lot 9 prêtes") == "lot_9"
    assert subject_group("Bonjour").startswith("subject_hash_")


def test_monthly_scope_prefixes_the_month():
    assert scoped_group("lot_9", NOW, monthly=True) == "2026-11:lot_9"
    assert scoped_group("lot_9", NOW, monthly=False) == "lot_9"


def test_delivery_time_urgence_uses_the_given_zone():
    utc_now = dt.datetime(2026, 11, 3, 23, 30, tzinfo=dt.UTC)
    assert extract_delivery_time("URGENCE", "", utc_now.astimezone(PARIS)) == "01h30"
