"""SMS text rules: GSM-7 where possible, segment counting, splitting.

GSM-7 fits 160 characters in one SMS and 153 per segment of a longer one;
the extension characters ``^ { } \\ [ ~ ] | €`` take two. Anything outside
GSM-7 (Arabic, Cyrillic, emoji, curly quotes) makes the whole message UCS-2:
70 characters, 67 per segment, counted in UTF-16 code units. A text that
would be GSM-7 but for typographic quotes, dashes or emoji is cleaned so it
stays GSM-7 (that halves the cost of a German or Turkish-less text).
"""

from __future__ import annotations

import math
import re
import unicodedata

GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = set("^{}\\[~]|€\f")
_TYPOGRAPHY = str.maketrans(
    {
        "“": '"',
        "”": '"',
        "„": '"',
        "«": '"',
        "»": '"',
        "‘": "'",
        "’": "'",
        "‚": "'",
        "–": "-",
        "—": "-",
        "‑": "-",
        "…": "...",
        "\u00a0": " ",
        "\u202f": " ",
        "•": "-",
        "\u2068": "",
        "\u2069": "",
        "\u200e": "",
        "\u200f": "",
    }
)
MAX_SEGMENTS = 6  # longer replies are split at sentence boundaries
_SENTENCE_END = re.compile(r"((?<=[.!?؟…])[ \t]+|\s*\n\s*)")


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _is_emoji(ch: str) -> bool:
    return unicodedata.category(ch) == "So" or ch in ("\ufe0f", "\u200d") or 0x1F000 <= ord(ch) <= 0x1FAFF


def prefer_gsm7(text: str) -> str:
    """Replace typography and drop emoji if that makes the text GSM-7; else keep it."""
    cleaned = text.translate(_TYPOGRAPHY)
    cleaned = "".join(ch for ch in cleaned if not _is_emoji(ch))
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    return cleaned if is_gsm7(cleaned) else text


def segments(text: str) -> tuple[str, int]:
    """("gsm7" or "ucs2", number of SMS segments)."""
    if is_gsm7(text):
        units = sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
        return "gsm7", 1 if units <= 160 else math.ceil(units / 153)
    units = len(text.encode("utf-16-le")) // 2
    return "ucs2", 1 if units <= 70 else math.ceil(units / 67)


def split(text: str, max_segments: int = MAX_SEGMENTS) -> list[str]:
    """Split a long text at sentence (or line) boundaries into parts of at most max_segments."""
    if segments(text)[1] <= max_segments:
        return [text]
    tokens = _SENTENCE_END.split(text)
    parts: list[str] = []
    current = ""
    for i in range(0, len(tokens), 2):
        piece = tokens[i]
        sep = tokens[i - 1] if i else ""
        joiner = "\n" if "\n" in sep else " "
        candidate = f"{current}{joiner}{piece}" if current else piece
        if current and segments(candidate)[1] > max_segments:
            parts.append(current)
            current = piece
        else:
            current = candidate
    if current:
        parts.append(current)
    out: list[str] = []
    for part in parts:  # a single sentence over the limit is cut at a word boundary
        while segments(part)[1] > max_segments:
            limit = (153 if is_gsm7(part) else 67) * max_segments
            cut = part.rfind(" ", 0, limit)
            cut = cut if cut > 0 else limit
            out.append(part[:cut])
            part = part[cut:].lstrip()
        out.append(part)
    return out
