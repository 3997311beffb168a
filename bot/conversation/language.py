"""Guess a resident's language from their first message — offline and
predictable, from data in ``flows/languages.yaml`` (script, distinctive
letters, greetings). Returns candidates: one when sure, two when the script
narrows it to a pair (Arabic/Farsi, Ukrainian/Russian), none when unsure.
"""

from __future__ import annotations

import unicodedata
from collections import Counter

from bot.conversation.flows import Language

_SCRIPTS = {"LATIN": "Latn", "ARABIC": "Arab", "CYRILLIC": "Cyrl"}


def script_of(text: str) -> str | None:
    counts: Counter[str] = Counter()
    for ch in text:
        if ch.isalpha():
            name = unicodedata.name(ch, "")
            for prefix, script in _SCRIPTS.items():
                if name.startswith(prefix):
                    counts[script] += 1
    return counts.most_common(1)[0][0] if counts else None


def _clean(text: str) -> str:
    kept = "".join(ch if ch.isalnum() or ch.isspace() else " " for ch in unicodedata.normalize("NFC", text))
    return " ".join(kept.casefold().split())


def detect(text: str | None, languages: tuple[Language, ...]) -> list[str]:
    if not text or not text.strip():
        return []
    cleaned = _clean(text)
    script = script_of(cleaned)
    if script is None:
        return []
    pool = [lang for lang in languages if lang.script == script]
    # 1. a greeting (the whole message, or how it starts)
    for lang in pool:
        for greeting in lang.greetings:
            if cleaned == greeting or cleaned.startswith(greeting + " "):
                return [lang.code]
    # 2. letters only one of the offered languages uses
    by_letters = [lang.code for lang in pool if lang.letters and any(ch in lang.letters for ch in cleaned)]
    if len(by_letters) == 1:
        return by_letters
    # 3. a script shared by just a few languages: ask between those
    candidates = [lang.code for lang in pool if lang.greetings]  # never guess easy-read variants
    if 1 < len(candidates) <= 2:
        return candidates
    if len(candidates) == 1:
        return candidates
    return []
