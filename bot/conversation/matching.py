"""Understanding what a resident typed: normalising text and matching it to a choice.

A choice is matched by the pressed button's value, by its number in the list
(ASCII, Arabic-Indic or Persian digits), by its value or label in the
resident's language or English, and for yes/no and similar answers by the
answer words each catalog keeps (``texts.YES_WORDS`` …).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping

from bot.conversation import texts as M
from bot.conversation.flows import Choice
from bot.conversation.i18n import Translator
from bot.conversation.step import Message
from bot.values import Media

_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
# Arabic and Persian keyboards type yeh and kaf differently; compare them as one
_LETTERS = str.maketrans({"ي": "ی", "ى": "ی", "ك": "ک", "ة": "ه"})
_QUOTES = "\"'«»“”„‘’‚‹›"
ANSWER_WORDS: Mapping[str, tuple[str, str]] = {"yes": M.YES_WORDS, "no": M.NO_WORDS}


def normalise(text: str) -> str:
    """Casefold, native digits to ASCII, trim spaces and closing punctuation."""
    text = unicodedata.normalize("NFKC", text).translate(_DIGITS).translate(_LETTERS).strip()
    text = text.strip(_QUOTES + " ").lstrip("/").rstrip(" .!?؟。،,").strip(_QUOTES + " ")
    # casefold, then drop the combining dot that Turkish İ leaves behind ("DİL" -> "dil")
    return " ".join(text.split()).casefold().replace("\u0307", "")


def words(raw: str) -> set[str]:
    """The normalised words of a translator's ``a|b|c`` list."""
    return {normalise(w) for w in raw.split("|") if w.strip()}


def media_problem(media: Media) -> str:
    """Why a file is not taken: too large, or a kind the question does not accept."""
    return M.MEDIA_TOO_LARGE if media.kind == "too_large" else M.MEDIA_NOT_ACCEPTED


def letters(text: str) -> int:
    return sum(1 for ch in text if unicodedata.category(ch).startswith("L"))


def match(
    choices: tuple[Choice, ...],
    message: Message,
    translators: Iterable[Translator],
    extra_words: Mapping[str, tuple[str, str]] | None = None,
) -> Choice | None:
    """The choice the message picks, or None."""
    if message.choice is not None:
        return next((c for c in choices if c.value == message.choice), None)
    if not message.text:
        return None
    said = normalise(message.text)
    if said.isdigit():
        index = int(said) - 1
        return choices[index] if 0 <= index < len(choices) else None
    translators = list(translators)
    extra = {**ANSWER_WORDS, **(extra_words or {})}
    for c in choices:
        candidates = {normalise(c.value), normalise(c.label)}
        for tr in translators:
            candidates.add(normalise(tr.gettext(c.label)))
            if c.value in extra:
                candidates |= words(tr.pgettext(*extra[c.value]))
        if c.value in extra:
            candidates |= words(extra[c.value][1])
        if said in candidates:
            return c
    return None
