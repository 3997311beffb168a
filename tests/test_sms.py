"""SMS text rules: GSM-7 vs UCS-2 segments (cross-checked with the independent codec
``smsutil``), cleaning, bidi marks instead of isolates, splitting (with properties)."""

from __future__ import annotations

import unicodedata

import pytest
import smsutil
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from channels import twilio_sms
from channels.sms_text import LRM, MAX_SEGMENTS, RLM, bidi_marks, is_gsm7, prefer_gsm7, segments, split

FSI, PDI = "\u2068", "\u2069"
ISOLATES = set("\u2066\u2067\u2068\u2069")
EMOJI = "😀👍🏽🇩🇪👨‍👩‍👧❤️"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ("gsm7", 1)),
        ("a" * 160, ("gsm7", 1)),
        ("a" * 161, ("gsm7", 2)),
        ("a" * 306, ("gsm7", 2)),
        ("a" * 307, ("gsm7", 3)),
        ("€" * 80, ("gsm7", 1)),  # extension characters count double
        ("€" * 81, ("gsm7", 2)),
        ("[]{}" * 20, ("gsm7", 1)),
        ("[]{}" * 20 + "a", ("gsm7", 2)),
        ("a" * 152 + "€" + "a" * 152, ("gsm7", 3)),  # 306 septets, but the escape pair is not cut: 152 | 154 → 3
        ("Grüße aus Neukölln, ÄÖÜß" * 6, ("gsm7", 1)),  # umlauts and ß are GSM-7
        ("ش" * 70, ("ucs2", 1)),
        ("ش" * 71, ("ucs2", 2)),
        ("Привет" * 22, ("ucs2", 2)),
        ("😀" * 35, ("ucs2", 1)),  # an emoji is two UTF-16 units
        ("😀" * 36, ("ucs2", 2)),
        ("ش" * 66 + "😀" + "ش" * 66, ("ucs2", 3)),  # 134 units, but a surrogate pair is not cut: 66 | 68 → 3
        ("ğ" * 70, ("ucs2", 1)),  # Turkish ğ is not GSM-7
    ],
)
def test_segments(text: str, expected: tuple[str, int]) -> None:
    assert segments(text) == expected
    assert segments(text)[1] == len(smsutil.split(text).parts)


# characters that exercise both encodings: basic GSM-7, extension characters (two septets),
# umlauts, Arabic, Cyrillic, Turkish, emoji outside the BMP (two UTF-16 units) and their joiners
GSM_CHARS = "aZ0 .!?,\n€[]{}^~|\\äöüßÄÉ@£$"
OTHER_CHARS = "شكرًا لك ğşПривет“”–…\u200e\u200f" + EMOJI + "\U0001f600\U0001f9d1\u0301"
gsm_texts = st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=1200)
any_texts = st.text(
    alphabet=st.one_of(
        st.sampled_from(GSM_CHARS + OTHER_CHARS), st.characters(exclude_characters="\x1b", exclude_categories=["Cs"])
    ),
    max_size=1500,
)


@given(gsm_texts)
@settings(max_examples=200, deadline=None)
def test_gsm7_segments_agree_with_smsutil(text: str) -> None:
    assert segments(text) == ("gsm7", len(smsutil.split(text).parts))


@given(any_texts)
@settings(max_examples=300, deadline=None)
@example("a" * 152 + "€" + "a" * 200)
@example("ش" * 66 + "😀" * 50)
def test_segments_agree_with_smsutil(text: str) -> None:
    # (ESC itself is left out: smsutil takes a bare escape as GSM-7; nothing we send holds one)
    # (and smsutil calls an empty text UCS-2; it is one segment either way)
    expected = "gsm7" if smsutil.split(text).encoding == "gsm0338" or not text else "ucs2"
    assert segments(text) == (expected, len(smsutil.split(text).parts))


def test_typography_and_emoji_are_replaced_to_stay_gsm7() -> None:
    assert prefer_gsm7("„Danke“ – super 👍 … ‘ok’") == "\"Danke\" - super ... 'ok'"
    assert prefer_gsm7("Ihre Nummer ist \u2068K7Q-3MX\u2069.") == "Ihre Nummer ist K7Q-3MX."


def test_text_that_needs_ucs2_keeps_its_characters_but_not_its_isolates() -> None:
    arabic = "شكراً! رقمكم هو \u2068K7Q-3MX\u2069 «هنا»"
    assert prefer_gsm7(arabic) == f"شكراً! رقمكم هو {LRM}K7Q-3MX{LRM} «هنا»"


# --- bidi: first-strong isolates become marks basic phones render ---------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a left-to-right reference in an Arabic sentence: LRM on both sides binds it together
        (f"رقمكم هو {FSI}K7Q-3MX{PDI}.", f"رقمكم هو {LRM}K7Q-3MX{LRM}."),
        # a number range after Arabic letters would show as "34-12" without the LRM before it
        (f"من {FSI}12-34{PDI} يوم", f"من {LRM}12-34{LRM} يوم"),
        # the resident's own words with trailing punctuation stay whole: "Mehr Bäume!" not "!Mehr Bäume"
        (f"فكرتك: «{FSI}Mehr Bäume!{PDI}»", f"فكرتك: «{LRM}Mehr Bäume!{LRM}»"),
        # Farsi: the same
        (f"شماره شما {FSI}K7Q-3MX{PDI} است", f"شماره شما {LRM}K7Q-3MX{LRM} است"),
        # a right-to-left value in a right-to-left line needs no mark
        (f"فكرتك: {FSI}أشجار أكثر{PDI}", "فكرتك: أشجار أكثر"),
        # a numbered option at the start of an Arabic line: no Arabic letter before it, so no mark
        # (each costs a UTF-16 unit in every line of a menu)
        (f"{FSI}1{PDI} العربية\n{FSI}2{PDI} فارسی", "1 العربية\n2 فارسی"),
        (f"{FSI}1{PDI} العربية\n{FSI}3{PDI} Deutsch", "1 العربية\n3 Deutsch"),
        # a left-to-right value that begins an Arabic line: marked, and the line started with an
        # RLM so it stays right-to-left (the isolate had hidden the value from the paragraph rule)
        (f"{FSI}K7Q-3MX{PDI} هو رقمكم", f"{RLM}{LRM}K7Q-3MX{LRM} هو رقمكم"),
        # a number after Arabic text in the same line is marked
        (f"الخيار {FSI}1{PDI} نعم", f"الخيار {LRM}1{LRM} نعم"),
        # a right-to-left value in a left-to-right line gets RLMs
        (f"Ihre Idee: {FSI}أشجار{PDI}!", f"Ihre Idee: {RLM}أشجار{RLM}!"),
        # nested, unclosed and stray isolates never survive
        (f"رقم {FSI}A {FSI}ب{PDI} B{PDI}", f"رقم {LRM}A {RLM}ب{RLM} B{LRM}"),
        (f"رقم {FSI}K7Q", f"رقم {LRM}K7Q{LRM}"),
        (f"رقم{PDI} هنا", "رقم هنا"),
        ("\u2066abc\u2069 شكرا", f"{RLM}{LRM}abc{LRM} شكرا"),
        ("Ohne Isolate bleibt alles, wie es ist.", "Ohne Isolate bleibt alles, wie es ist."),
    ],
)
def test_isolates_become_marks(text: str, expected: str) -> None:
    assert bidi_marks(text) == expected


@given(any_texts.map(lambda t: t.replace("x", FSI).replace("y", PDI).replace("z", "\u2066")))
@settings(max_examples=200, deadline=None)
def test_no_sms_ever_carries_an_isolate(text: str) -> None:
    for part in twilio_sms.split(text):
        assert not ISOLATES & set(part)


def test_arabic_reply_over_the_sms_channel_has_marks_not_isolates() -> None:
    reply = f"شكراً! رقمكم هو {FSI}K7Q-3MX{PDI}. " * 40  # long: split into several parts
    parts = twilio_sms.split(reply)
    assert len(parts) > 1
    assert all(not ISOLATES & set(p) and twilio_sms.segments(p) <= MAX_SEGMENTS for p in parts)
    assert all(f"{LRM}K7Q-3MX{LRM}" in p for p in parts)


# --- splitting ---------------------------------------------------------------------------------


def test_long_text_is_split_at_sentence_boundaries() -> None:
    sentences = [f"Satz Nummer {i} ist hier." for i in range(80)]
    parts = split(" ".join(sentences))
    assert len(parts) > 1
    assert all(segments(p)[1] <= 6 for p in parts)
    assert all(p.endswith(".") for p in parts)
    assert " ".join(parts) == " ".join(sentences)


def test_numbered_lists_split_between_lines() -> None:
    text = "Welcher Bezirk?\n" + "\n".join(f"{i} Bezirk mit einem recht langen Namen Nummer {i}" for i in range(1, 40))
    parts = split(text)
    assert len(parts) > 1 and all(segments(p)[1] <= 6 for p in parts)
    assert "\n".join(parts) == text


@pytest.mark.parametrize(
    "text",
    [
        "😀" * 500,  # one "word" of emoji: 1000 UTF-16 units
        "€" * 1000,  # one word of extension characters: 2000 septets
        "Ein sehr langer Satz mit Emoji 😀 und Sonderzeichen [€] " * 30,  # one long sentence
        "ش" * 200 + " " + "😀" * 300 + " " + "word " * 100,
    ],
)
def test_parts_never_exceed_the_cap_with_emoji_or_extension_characters(text: str) -> None:
    parts = split(text)
    assert all(segments(p)[1] <= MAX_SEGMENTS for p in parts), [segments(p) for p in parts]
    assert all(len(smsutil.split(p).parts) <= MAX_SEGMENTS for p in parts)
    assert "".join(parts).replace(" ", "") == text.replace(" ", "")


def test_emoji_sequences_are_not_cut_apart() -> None:
    text = "👨‍👩‍👧" * 200 + "🇩🇪" * 150  # joined families, then flags, no spaces
    parts = split(text)
    assert len(parts) > 1
    for before, after in zip(parts, parts[1:], strict=False):
        assert not before.endswith("\u200d") and not after.startswith("\u200d")
        assert unicodedata.category(after[0]) != "Mn"
        # flags come in pairs of regional indicators: each part holds whole flags
        assert sum(1 for ch in after if "\U0001f1e6" <= ch <= "\U0001f1ff") % 2 == 0


def _visible(text: str) -> str:
    return "".join(ch for ch in text if not ch.isspace())


@given(any_texts, st.integers(min_value=1, max_value=MAX_SEGMENTS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example("a. " * 400, 1)
@example("😀" * 400, 2)
@example("\n\n  x  \n" * 300, 1)
def test_split_properties(text: str, cap: int) -> None:
    parts = split(text, cap)
    assert parts
    for part in parts:
        assert segments(part)[1] <= cap
        assert len(smsutil.split(part).parts) <= cap
    assert _visible("".join(parts)) == _visible(text)  # every non-space character, in order


@given(any_texts)
@settings(max_examples=150, deadline=None)
def test_the_sms_channel_never_sends_a_part_over_six_segments(text: str) -> None:
    assert all(twilio_sms.segments(p) <= MAX_SEGMENTS for p in twilio_sms.split(text))


def test_gsm7_detection() -> None:
    assert is_gsm7("Grüße [ok] €5") and not is_gsm7("Grüße 😀") and not is_gsm7("ğ")
