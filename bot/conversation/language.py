"""Guess a resident's language from their first message — offline and
predictable, from data in ``flows/languages.yaml`` (script, distinctive
letters, greetings) and, for a sentence or more of free text, a language
identification model (py3langid, shipped with the package, no download).
Returns candidates: one when sure, two when the script narrows it to a pair
(Arabic/Farsi, Ukrainian/Russian), none when unsure.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from functools import lru_cache
from typing import Any

from bot.conversation.flows import Language

MIN_WORDS = 3  # fewer words say too little about a language ("ja", "Kreuzberg")
CONFIDENT = 0.95


@lru_cache(maxsize=4)
def _model(codes: tuple[str, ...]) -> Any:
    """py3langid restricted to these languages (loading takes about a second: once per process)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(codes))
    return identifier


class Identifier:
    """Which offered language a free text is in, when the model is confident."""

    def __init__(self, languages: tuple[Language, ...]) -> None:
        # easy-read variants share their base language's words: never guessed from text
        self.codes = {lang.code.split("-")[0]: lang.code for lang in languages if lang.greetings}

    def __call__(self, text: str, pool: list[Language]) -> str | None:
        allowed = tuple(sorted(c for c in self.codes if self.codes[c] in {lang.code for lang in pool}))
        if len(text.split()) < MIN_WORDS or not allowed:
            return None
        try:
            code, probability = _model(allowed).classify(text)
        except (ValueError, KeyError):  # a language the model does not know
            return None
        return self.codes[code] if probability >= CONFIDENT else None


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


def detect(text: str | None, languages: tuple[Language, ...], identify: Identifier | None = None) -> list[str]:
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
    # 2. a sentence the model is sure about
    if identify is not None:
        found = identify(text, pool)
        if found is not None:
            return [found]
    # 3. letters only one of the offered languages uses
    by_letters = [lang.code for lang in pool if lang.letters and any(ch in lang.letters for ch in cleaned)]
    if len(by_letters) == 1:
        return by_letters
    # 4. a script shared by just a few languages: ask between those
    candidates = [lang.code for lang in pool if lang.greetings]  # never guess easy-read variants
    if 1 < len(candidates) <= 2:
        return candidates
    if len(candidates) == 1:
        return candidates
    return []
