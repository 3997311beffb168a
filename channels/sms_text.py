"""SMS text rules: GSM-7 where possible, bidi marks instead of isolates,
segment counting, splitting.

GSM-7 fits 160 characters in one SMS and 153 per segment of a longer one;
the extension characters ``^ { } \\ [ ~ ] | €`` (and form feed) take two
septets, and an escape pair is never cut between two segments. Anything
outside GSM-7 (Arabic, Cyrillic, emoji, curly quotes) makes the whole message
UCS-2: 70 UTF-16 code units in one SMS, 67 per segment of a longer one; a
character outside the BMP (most emoji) takes two units and its surrogate pair
is never cut between segments either. Segments are counted by packing the
characters one by one as a sending phone or gateway does, so the counts agree
with an independent codec (``smsutil``), not just ``ceil(units / 153)``.

A text that would be GSM-7 but for typographic quotes, dashes or emoji is
cleaned so it stays GSM-7 (that halves the cost of a German text). A
right-to-left text keeps its characters, but the renderer's first-strong
isolates (U+2068 … U+2069), which many basic phones draw as boxes, become
left-to-right or right-to-left marks (U+200E / U+200F) that every phone knows.
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
GSM7_SINGLE, GSM7_SEGMENT = 160, 153  # septets
UCS2_SINGLE, UCS2_SEGMENT = 70, 67  # UTF-16 code units
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
        "\u2066": "",
        "\u2067": "",
        "\u2068": "",
        "\u2069": "",
        "\u200e": "",
        "\u200f": "",
    }
)
MAX_SEGMENTS = 6  # longer replies are split at sentence boundaries
_SENTENCE_END = re.compile(r"((?<=[.!?؟…])[ \t]+|\s*\n\s*)")
_WORD_GAP = re.compile(r"(\s+)")
_LEVELS = (_SENTENCE_END, _WORD_GAP)  # sentences (and lines) first, then words, then characters

LRM, RLM = "\u200e", "\u200f"
LRI, RLI, FSI, PDI = "\u2066", "\u2067", "\u2068", "\u2069"
_OPENERS = {LRI: "L", RLI: "R", FSI: ""}  # "": the direction of the first strong character inside
_PARAGRAPH = re.compile(r"(\r\n|[\n\r\x1c-\x1e\x85\u2029])")  # bidi paragraph separators (class B)


def is_gsm7(text: str) -> bool:
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _is_emoji(ch: str) -> bool:
    return unicodedata.category(ch) == "So" or ch in ("\ufe0f", "\u200d") or 0x1F000 <= ord(ch) <= 0x1FAFF


def prefer_gsm7(text: str) -> str:
    """Replace typography and drop emoji if that makes the text GSM-7; else keep it,
    with its directional isolates turned into marks (:func:`bidi_marks`)."""
    cleaned = text.translate(_TYPOGRAPHY)
    cleaned = "".join(ch for ch in cleaned if not _is_emoji(ch))
    cleaned = re.sub(r"[ \t]{2,}", " ", cleaned).strip()
    return cleaned if is_gsm7(cleaned) else bidi_marks(text)


# -- bidi ----------------------------------------------------------------------------------------


def _strong(ch: str) -> str:
    """The strong direction of a character: "L", "R" (Arabic letters too) or "" for none."""
    kind = unicodedata.bidirectional(ch)
    return "L" if kind == "L" else "R" if kind in ("R", "AL") else ""


def _first_strong(text: str) -> str:
    """The direction of the first strong character outside isolates ("" if none), as the
    Unicode bidi algorithm finds a paragraph's (rule P2) or an FSI's direction."""
    depth = 0
    for ch in text:
        if ch in _OPENERS:
            depth += 1
        elif ch == PDI:
            depth = max(0, depth - 1)
        elif depth == 0 and (found := _strong(ch)):
            return found
    return ""


def _mark(direction: str) -> str:
    return RLM if direction == "R" else LRM


def _resolve(text: str, direction: str) -> str:
    """``text`` (inside a paragraph or an isolate of ``direction``, "" if undecided) with every
    isolate it holds replaced: a value whose direction differs from its surroundings gets a
    mark of its own direction on both sides, which binds its edge punctuation and numbers to it
    (an LRM before "12-34" stops Arabic letters from turning it into "34-12"; one after
    "Mehr Bäume!" keeps the "!" at its end); a value in the same direction needs nothing."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == PDI:  # a PDI without its opener: dropped
            i += 1
            continue
        if ch not in _OPENERS:
            out.append(ch)
            i += 1
            continue
        depth, j = 1, i + 1  # find the matching PDI (an unclosed isolate ends with the paragraph)
        while j < len(text) and depth:
            depth += 1 if text[j] in _OPENERS else -1 if text[j] == PDI else 0
            j += 1
        inner = text[i + 1 : j - 1] if depth == 0 else text[i + 1 : j]
        strong_inside = _OPENERS[ch] or _first_strong(inner)
        own = strong_inside or "L"  # an FSI with nothing strong inside is an LRI
        value = _resolve(inner, own)
        if not direction or own == direction:
            out.append(value)
        elif not strong_inside and direction == "R" and not _first_strong("".join(out)):
            # a number (or other neutral value) before anything strong in a right-to-left line,
            # e.g. "1 نعم": no Arabic letter precedes it to change it, so it needs no marks
            out.append(value)
        else:
            out.append(f"{_mark(own)}{value}{_mark(own)}")
        i = j
    return "".join(out)


def _paragraph_marks(paragraph: str) -> str:
    direction = _first_strong(paragraph)
    resolved = _resolve(paragraph, direction)
    if direction and _first_strong(resolved) != direction:
        # the isolates hid a leading value from rule P2; a mark keeps the paragraph's direction
        resolved = _mark(direction) + resolved
    return resolved


def bidi_marks(text: str) -> str:
    """Directional isolates (U+2066–U+2069), which many basic phones show as boxes, replaced by
    LRM/RLM marks, paragraph (line) by paragraph. In an Arabic line "رقمكم ⁨K7Q-3MX⁩." becomes
    "رقمكم \u200eK7Q-3MX\u200e."; a line that begins with a left-to-right value ("⁨K7Q⁩ هو") is
    started with an RLM so it stays right-to-left; a number that begins a line ("⁨1⁩ العربية")
    needs no mark. Text without isolates is returned as it is."""
    if not any(LRI <= ch <= PDI for ch in text):
        return text
    pieces = _PARAGRAPH.split(text)
    return "".join(piece if i % 2 else _paragraph_marks(piece) for i, piece in enumerate(pieces))


# -- segments ------------------------------------------------------------------------------------


def _costs(text: str) -> tuple[str, list[int] | None, int]:
    """(encoding, the cost of each character where some cost two, or None when all cost one, total)."""
    if is_gsm7(text):
        if not any(ch in GSM7_EXTENSION for ch in text):
            return "gsm7", None, len(text)
        costs = [2 if ch in GSM7_EXTENSION else 1 for ch in text]
        return "gsm7", costs, sum(costs)
    if all(ord(ch) <= 0xFFFF for ch in text):
        return "ucs2", None, len(text)
    costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
    return "ucs2", costs, sum(costs)


def segments(text: str) -> tuple[str, int]:
    """("gsm7" or "ucs2", number of SMS segments): one if the text fits a single SMS, else
    segments of 153 septets / 67 UTF-16 units filled in order, never cutting a character."""
    encoding, costs, total = _costs(text)
    single, per_segment = (GSM7_SINGLE, GSM7_SEGMENT) if encoding == "gsm7" else (UCS2_SINGLE, UCS2_SEGMENT)
    if total <= single:
        return encoding, 1
    if costs is None:
        return encoding, math.ceil(total / per_segment)
    count, used = 1, 0
    for cost in costs:
        if used + cost > per_segment:
            count, used = count + 1, cost
        else:
            used += cost
    return encoding, count


# -- splitting -----------------------------------------------------------------------------------


def _fits(text: str, max_segments: int) -> bool:
    return segments(text)[1] <= max_segments


def split(text: str, max_segments: int = MAX_SEGMENTS) -> list[str]:
    """A long text in parts of at most ``max_segments`` segments each (every part checked with
    :func:`segments`): at sentence or line boundaries, a sentence too long for one part at word
    boundaries, a word too long at a character boundary that does not break an emoji or an
    accent from its letter. Whitespace at a cut is dropped; nothing else is lost or reordered."""
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")
    if _fits(text, max_segments):
        return [text]
    return _pack(text.strip(), max_segments, 0) or [""]


def _pack(text: str, max_segments: int, level: int) -> list[str]:
    """Greedy: as many pieces of this level as fit into each part; a piece that does not fit
    alone is packed at the next level."""
    if _fits(text, max_segments):
        return [text] if text else []
    if level == len(_LEVELS):
        return _cut(text, max_segments)
    tokens = _LEVELS[level].split(text)
    parts: list[str] = []
    current, gap = "", ""
    for i, token in enumerate(tokens):
        if i % 2:  # a separator (whitespace only)
            gap += token
            continue
        if not token:
            continue
        if current:
            candidate = current + gap + token
            if _fits(candidate, max_segments):
                current, gap = candidate, ""
                continue
            parts.append(current)
        gap = ""
        pieces = _pack(token, max_segments, level + 1)
        parts.extend(pieces[:-1])
        current = pieces[-1]
    if current:
        parts.append(current)
    return parts


def _cut(text: str, max_segments: int) -> list[str]:
    """A text without spaces in the longest prefixes that fit (segments grow with the prefix,
    so a binary search finds them), each moved back to the nearest character boundary."""
    parts: list[str] = []
    while not _fits(text, max_segments):
        low, high = 1, len(text) - 1  # the prefix of ``low`` characters fits (one character always does)
        while low < high:
            middle = (low + high + 1) // 2
            if _fits(text[:middle], max_segments):
                low = middle
            else:
                high = middle - 1
        at = next((k for k in range(low, max(0, low - 32), -1) if _breakable(text, k)), low)
        parts.append(text[:at])
        text = text[at:]
    return parts + [text]


_JOINING = re.compile("[\u200c\u200d\ufe00-\ufe0f\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f\U000e0100-\U000e01ef]")


def _regional(ch: str) -> bool:
    return "\U0001f1e6" <= ch <= "\U0001f1ff"


def _breakable(text: str, at: int) -> bool:
    """May ``text`` be cut before ``text[at]``? Not inside CR LF, before a combining mark,
    variation selector, skin tone or emoji tag, not around a zero-width joiner, and not
    inside a flag (a pair of regional indicators)."""
    before, after = text[at - 1], text[at]
    if before == "\r" and after == "\n":
        return False
    if before == "\u200d" or _JOINING.match(after) or unicodedata.category(after).startswith("M"):
        return False
    if _regional(before) and _regional(after):
        run = 0
        while at - 1 - run >= 0 and _regional(text[at - 1 - run]):
            run += 1
        return run % 2 == 0
    return True
