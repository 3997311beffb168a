"""Understanding what a resident typed: normalising text and matching it to a choice.

People answer the way people do: ``ja``, ``👍🏽``, ``Kreuzberg``, ``neukolln``,
``verkehr``, ``2.``. A choice is matched, in this order, by

1. the pressed button's value, or its number in the list (ASCII,
   Arabic-Indic or Persian digits);
2. its value, its label (in the resident's language and English), an alias
   from ``flows/`` (Ortsteile for districts, words for topics), or — for a
   choice that ``means`` yes/no/unsure — the answer words each catalog keeps
   (``texts.YES_WORDS`` …), all compared without case, diacritics or
   punctuation;
3. a word of a label, or a label or alias inside a longer answer
   ("ich wohne im Wedding"), when it points to one choice only;
4. a small typo (rapidfuzz): sure when the answer is very close to one
   choice, otherwise :class:`Match` says ``sure=False`` and the engine asks
   "Did you mean …?".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rapidfuzz import fuzz

from bot.conversation import texts as M
from bot.conversation.flows import Choice
from bot.conversation.i18n import Translator
from bot.conversation.step import Message
from bot.values import Media

_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")
# Arabic and Persian keyboards type yeh and kaf differently; compare them as one
_LETTERS = str.maketrans({"ي": "ی", "ى": "ی", "ك": "ک", "ة": "ه"})
_QUOTES = "\"'«»“”„‘’‚‹›"
# skin tones and the emoji variation selector: 👍🏽 is 👍
_EMOJI_MODIFIERS = dict.fromkeys([*range(0x1F3FB, 0x1F400), 0xFE0F, 0xFE0E, 0x200D], None)
MEANING_WORDS: Mapping[str, tuple[str, str]] = {
    "yes": M.YES_WORDS,
    "no": M.NO_WORDS,
    "unsure": M.UNSURE_WORDS,
    "skip": M.SKIP_WORDS,
}
SURE = 90  # a typo this close to one choice only is taken without asking
MAYBE = 75  # this close: "Did you mean …?"
MIN_WORD = 3  # shorter words of a label ("of", "and") never pick a choice alone


def normalise(text: str) -> str:
    """Casefold, native digits to ASCII, trim spaces and closing punctuation."""
    text = unicodedata.normalize("NFKC", text).translate(_DIGITS).translate(_LETTERS).strip()
    text = text.translate(_EMOJI_MODIFIERS)
    text = text.strip(_QUOTES + " ").lstrip("/").rstrip(" .!?؟。،,").strip(_QUOTES + " ")
    # casefold, then drop the combining dot that Turkish İ leaves behind ("DİL" -> "dil")
    return " ".join(text.split()).casefold().replace("\u0307", "")


_STRIP_MARKS = {"ß": "ss", "ł": "l", "đ": "d", "ø": "o", "æ": "ae", "œ": "oe", "ı": "i"}
_PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)


def fold(text: str) -> str:
    """``normalise``, then without diacritics and punctuation: "Neukölln!" -> "neukolln".

    Latin, Cyrillic and Greek letters lose their accents (ö -> o, й stays й
    only in NFC: ``й`` folds to ``и``, which residents type too); Arabic-script
    letters keep theirs but lose the short-vowel marks (harakat)."""
    text = normalise(text)
    out = []
    for ch in unicodedata.normalize("NFD", text):
        if unicodedata.category(ch) == "Mn":
            continue
        out.append(_STRIP_MARKS.get(ch, ch))
    emoji_kept = "".join(out)
    folded = _PUNCT.sub(" ", emoji_kept)
    folded = " ".join(folded.split())
    return folded or " ".join(emoji_kept.split())  # an answer of only emoji or punctuation stays itself


def words(raw: str) -> set[str]:
    """The normalised words of a translator's ``a|b|c`` list."""
    return {normalise(w) for w in raw.split("|") if w.strip()}


def media_problem(media: Media) -> str:
    """Why a file is not taken: too large, or a kind the question does not accept."""
    return M.MEDIA_TOO_LARGE if media.kind == "too_large" else M.MEDIA_NOT_ACCEPTED


def letters(text: str) -> int:
    return sum(1 for ch in text if unicodedata.category(ch).startswith("L"))


@dataclass(frozen=True)
class Match:
    choice: Choice
    sure: bool = True
    coverage: float = 1.0  # how much of the answer the matched name is (1: all of it)


def _names(c: Choice, translators: list[Translator], languages: set[str], own: bool = False) -> set[str]:
    """Everything that names the choice outright, folded (``own``: in these languages only,
    without the English source label)."""
    names = set() if own else {fold(c.value), fold(c.label)}
    for tr in translators:
        names.add(fold(tr.gettext(c.label)))
    for lang, aliases in c.aliases.items():
        if lang == "*" or lang in languages:
            names |= {fold(a) for a in aliases}
    return {n for n in names if n}


def _meaning_words(
    c: Choice, translators: list[Translator], extra: Mapping[str, tuple[str, str]], own: bool = False
) -> set[str]:
    entries = []
    if c.means is not None and c.means in MEANING_WORDS:
        entries.append(MEANING_WORDS[c.means])
    if c.value in extra:
        entries.append(extra[c.value])
    found: set[str] = set()
    for ctx, msgid in entries:
        if not own:
            found |= {fold(w) for w in words(msgid)}
        for tr in translators:
            found |= {fold(w) for w in words(tr.pgettext(ctx, msgid))}
    return {w for w in found if w}


def _base_languages(translators: list[Translator]) -> set[str]:
    """The languages whose aliases count: each translator's code and its base (de-x-ls -> de)."""
    codes = set()
    for tr in translators:
        codes.add(tr.language.code)
        codes.add(tr.language.code.split("-")[0])
    return codes


def _unique(found: dict[str, Choice]) -> Choice | None:
    values = {c.value for c in found.values()}
    if len(values) == 1:
        return next(iter(found.values()))
    return None


def match(
    choices: tuple[Choice, ...],
    message: Message,
    translators: Iterable[Translator],
    extra_words: Mapping[str, tuple[str, str]] | None = None,
    partial: bool = True,
) -> Match | None:
    """The choice the message picks (``sure=False``: ask first), or None. Without
    ``partial`` only outright answers count (a long free text is no choice)."""
    if message.choice is not None:
        picked = next((c for c in choices if c.value == message.choice), None)
        return Match(picked) if picked else None
    if not message.text or not choices:
        return None
    said_plain = normalise(message.text)
    if said_plain.isdigit():
        index = int(said_plain) - 1
        return Match(choices[index]) if 0 <= index < len(choices) else None
    said = fold(message.text)
    if not said:
        return None
    translators = list(translators)
    extra = dict(extra_words or {})
    # 2. outright: a name, or an answer word of what the choice means — first in the resident's
    # own language (Polish "no" means yes there, whatever English says), then with English too
    for group in ([translators[0]], translators) if len(translators) > 1 else (translators,):
        own = group is not translators
        languages = _base_languages(group)
        names = {c.value: _names(c, group, languages, own) for c in choices}
        answers = {c.value: _meaning_words(c, group, extra, own) for c in choices}
        exact = {c.value: c for c in choices if said in names[c.value] or said in answers[c.value]}
        if exact:
            return Match(exact[next(iter(exact))]) if len(exact) == 1 else None
    if not partial:
        return None
    # inside a sentence, answer words count only when they say one thing: "nie wiem" holds
    # "nie" (no) but means "I don't know"; "ja, aber nein" says nothing
    if len(_meanings_inside(said, translators)) > 1:
        return None
    return _partial(choices, said, names, answers)


def _meanings_inside(said: str, translators: list[Translator]) -> set[str]:
    padded = f" {said} "
    found = set()
    for meaning, (ctx, msgid) in MEANING_WORDS.items():
        entries = {fold(w) for w in words(msgid)}
        for tr in translators:
            entries |= {fold(w) for w in words(tr.pgettext(ctx, msgid))}
        if any(w and f" {w} " in padded for w in entries):
            found.add(meaning)
    return found


def looks_like_idea(text: str | None) -> bool:
    """Free text that is more than an answer: several words, a sentence's worth of letters."""
    if not text:
        return False
    return len(text.split()) >= 5 and letters(text) >= 25


def _partial(
    choices: tuple[Choice, ...], said: str, names: dict[str, set[str]], answers: dict[str, set[str]]
) -> Match | None:
    said_words = said.split()
    padded = f" {said} "
    # 3a. one word of a label: "kreuzberg" -> "friedrichshain kreuzberg"
    by_word = {
        c.value: c
        for c in choices
        if len(said) >= MIN_WORD and any(said in name.split() for name in names[c.value] if " " in name)
    }
    if by_word:
        one = _unique(by_word)
        return Match(one, coverage=0.9) if one is not None else None
    # 3b. a name inside a longer answer: "ich wohne im wedding", "ja gerne"
    if len(said_words) > 1:
        covered: dict[str, int] = {}
        for c in choices:
            hits = [n for n in names[c.value] if len(n) >= MIN_WORD and f" {n} " in padded]
            hits += [w for w in answers[c.value] if f" {w} " in padded]
            if hits:
                covered[c.value] = max(len(h) for h in hits)
        inside = {c.value: c for c in choices if c.value in covered}
        picked = _unique(inside) if inside else None
        if picked is not None:
            return Match(picked, coverage=covered[picked.value] / len(said))
        if inside:
            return None
    # 4. a small typo, compared with every name and every word of a name
    return _typo(choices, said, names)


def _typo(choices: tuple[Choice, ...], said: str, names: dict[str, set[str]]) -> Match | None:
    if len(said) < 4:  # "ne", "ja": too short to guess from
        return None
    best: dict[str, float] = {}
    for c in choices:
        candidates = set(names[c.value])
        candidates |= {w for n in names[c.value] for w in n.split() if len(w) >= 4}
        scores = [fuzz.ratio(said, cand) for cand in candidates if abs(len(cand) - len(said)) <= max(3, len(said) // 3)]
        if scores:
            best[c.value] = max(scores)
    if not best:
        return None
    ranked = sorted(best.items(), key=lambda kv: -kv[1])
    top_value, top = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    if top < MAYBE or top - runner_up < 8:
        return None
    picked = next(c for c in choices if c.value == top_value)
    return Match(picked, sure=top >= SURE)
