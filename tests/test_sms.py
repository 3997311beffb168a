"""SMS text rules: GSM-7 vs UCS-2 segments, cleaning, splitting."""

import pytest

from channels.sms_text import is_gsm7, prefer_gsm7, segments, split


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a" * 160, ("gsm7", 1)),
        ("a" * 161, ("gsm7", 2)),
        ("a" * 306, ("gsm7", 2)),
        ("a" * 307, ("gsm7", 3)),
        ("€" * 80, ("gsm7", 1)),  # extension characters count double
        ("€" * 81, ("gsm7", 2)),
        ("[]{}" * 20, ("gsm7", 1)),
        ("[]{}" * 20 + "a", ("gsm7", 2)),
        ("Grüße aus Neukölln, ÄÖÜß" * 6, ("gsm7", 1)),  # umlauts and ß are GSM-7
        ("ش" * 70, ("ucs2", 1)),
        ("ش" * 71, ("ucs2", 2)),
        ("Привет" * 22, ("ucs2", 2)),
        ("😀" * 35, ("ucs2", 1)),  # an emoji is two UTF-16 units
        ("😀" * 36, ("ucs2", 2)),
        ("ğ" * 70, ("ucs2", 1)),  # Turkish ğ is not GSM-7
    ],
)
def test_segments(text: str, expected: tuple[str, int]) -> None:
    assert segments(text) == expected


def test_typography_and_emoji_are_replaced_to_stay_gsm7() -> None:
    assert prefer_gsm7("„Danke“ – super 👍 … ‘ok’") == "\"Danke\" - super ... 'ok'"
    assert is_gsm7(prefer_gsm7("Ihre Nummer ist \u2068K7Q-3MX\u2069."))


def test_text_that_needs_ucs2_is_left_alone() -> None:
    arabic = "شكراً! رقمكم هو \u2068K7Q-3MX\u2069 «هنا»"
    assert prefer_gsm7(arabic) == arabic


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
