"""Every language: detection, choosing by name, whole dialogues, RTL, digits,
plurals and Babel formatting."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from babel.messages.pofile import read_po
from sqlalchemy import select

from bot.app import Kiezstimme
from bot.config import SHIPPED_I18N_DIR
from bot.conversation.i18n import po_path
from bot.conversation.language import detect
from bot.conversation.render import FSI, PDI, format_value
from bot.storage.models import Feedback, Idea
from bot.values import Media
from tests.helpers import Talk, shipped

ROOT = Path(__file__).resolve().parent.parent
FLOWS, CATALOGS = shipped()
CODES = [lang.code for lang in FLOWS.languages]
NAMES = {lang.code: lang.name for lang in FLOWS.languages}
IDEAS = {
    "de": "Mehr Bäume und Schatten auf dem Hermannplatz",
    "en": "More night buses to the outer districts, please",
    "tr": "Parklarda daha fazla bank ve gölge olsun",
    "ar": "نريد المزيد من المقاعد والظل في الحدائق",
    "fa": "در پارک‌ها نیمکت و سایه بیشتری بگذارید",
    "uk": "Більше лавок і тіні в парках, будь ласка",
    "ru": "Больше скамеек и тени в парках, пожалуйста",
    "pl": "Więcej ławek i cienia w parkach, proszę",
    "vi": "Thêm ghế đá và bóng mát trong công viên",
    "de-x-ls": "Mehr Bänke im Park. Das ist gut für alte Menschen.",
}


def english_sentences() -> set[str]:
    """English source texts long enough to recognise in a reply."""
    with open(po_path(SHIPPED_I18N_DIR, "de"), "rb") as fh:
        catalog = read_po(fh)
    out = set()
    for message in catalog:
        if message.id and not message.context and message.string != message.id:  # not proper names
            ids = message.id if isinstance(message.id, tuple) else (message.id,)
            for text in ids:
                first = text.split("{")[0].split("\n")[0].strip()
                if len(first) >= 12:
                    out.add(first)
    return out


ENGLISH = english_sentences()


def assert_in_language(code: str, texts: list[str]) -> None:
    if code == "en":
        return
    for text in texts:
        leaked = [e for e in ENGLISH if e in text]
        assert not leaked, f"{code}: English in reply {text!r}: {leaked}"


# --- detection ------------------------------------------------------------------------

GREETINGS = {
    "de": ["Hallo", "Guten Tag", "moin", "Servus!", "Hallo, ich habe eine Idee"],
    "en": ["Hello", "Good morning", "hey there", "Hi", "hi!"],
    "tr": ["Merhaba", "Selam", "Günaydın", "İyi akşamlar", "merhaba nasılsınız"],
    "ar": ["مرحبا", "السلام عليكم", "أهلا", "صباح الخير"],
    "fa": ["درود", "سلام خوبی؟", "صبح بخیر", "سلام، چطوری؟"],
    "uk": ["Привіт", "Добрий день", "Вітаю!", "Привіт, як справи?"],
    "ru": ["Привет", "Здравствуйте", "Добрый день", "Привет, как дела?"],
    "pl": ["Cześć", "Dzień dobry", "Witam", "hej, mam pomysł: więcej ławek"],
    "vi": ["Xin chào", "Chào bạn", "chào, tôi có ý kiến"],
}


@pytest.mark.parametrize(("code", "text"), [(c, t) for c, ts in GREETINGS.items() for t in ts])
def test_short_greetings_are_recognised(code: str, text: str) -> None:
    assert detect(text, FLOWS.languages) == [code]


@pytest.mark.parametrize(
    ("text", "candidates"),
    [("سلام", ["ar", "fa"]), ("Добро пожаловать", ["uk", "ru"]), ("hmm", []), ("👋", []), ("123", []), ("", [])],
)
def test_unclear_messages_give_candidates_or_nothing(text: str, candidates: list[str]) -> None:
    assert detect(text, FLOWS.languages) == candidates


def test_arabic_or_farsi_is_asked_between_just_those_two() -> None:
    talk = Talk.shipped()
    reply = talk.say("سلام")
    assert talk.node == "main.choose_language"
    assert f"{FSI}1{PDI} العربية\n{FSI}2{PDI} فارسی" in reply
    assert "Deutsch" not in reply
    assert "Willkommen" not in reply  # asked in Arabic and Farsi, not German
    talk.send("٢")  # Arabic-Indic two: the second of the two
    assert talk.conv.profile.language == "fa"


def test_greeting_while_choosing_picks_the_language() -> None:
    talk = Talk.shipped()
    talk.send("👋")
    talk.send("Merhaba")
    assert talk.conv.profile.language == "tr"
    assert talk.node == "main.consent"


@pytest.mark.parametrize("code", CODES)
def test_language_chosen_by_its_own_name(code: str) -> None:
    talk = Talk.shipped()
    talk.send("👋")
    talk.send(NAMES[code])
    assert talk.conv.profile.language == code


@pytest.mark.parametrize(
    ("word", "code"),
    [
        ("SPRACHE", "de"),
        ("DİL", "tr"),
        ("اللغة", "ar"),
        ("زبان", "fa"),
        ("МОВА", "uk"),
        ("ЯЗЫК", "ru"),
        ("JĘZYK", "pl"),
        ("NGÔN NGỮ", "vi"),
    ],
)
def test_language_keyword_in_every_language_reopens_the_choice(word: str, code: str) -> None:
    talk = Talk.shipped()
    for line in ["👋", NAMES[code], "1", "1"]:
        talk.send(line)
    assert talk.node == "idea.topic"
    reply = talk.say(word.lower())
    assert talk.node == "main.choose_language" and "Tiếng Việt" in reply
    talk.send("2")
    assert talk.node == "idea.topic" and talk.conv.profile.language == "en"


# --- digits, yes/no, RTL, formatting, plurals ----------------------------------------------


@pytest.mark.parametrize(
    ("digit", "topic"), [("۳", "administration"), ("٣", "administration"), ("3", "administration")]
)
def test_persian_resident_answers_with_persian_digits(digit: str, topic: str) -> None:
    talk = Talk.shipped()
    for line in ["درود", "۱", "۱"]:
        talk.send(line)
    talk.send(digit)
    assert talk.conv.dialogue.vars["topic"] == topic


@pytest.mark.parametrize("code", CODES)
@pytest.mark.parametrize("answer", ["yes", "no"])
def test_yes_and_no_in_every_language(code: str, answer: str) -> None:
    ctx, msgid = ("answer", "yes|y|ok|okay|sure|👍|✅") if answer == "yes" else ("answer", "no|n|nope|👎|❌")
    words = [w for w in CATALOGS.get(code).pgettext(ctx, msgid).split("|") if w.strip()]
    assert len(words) >= 3
    for word in words + (["👍", "✅"] if answer == "yes" else ["❌"]):
        talk = Talk.shipped()
        for line in ["👋", NAMES[code], "1", "1", "1", IDEAS[code], "1"]:
            talk.send(line)
        assert talk.node == "idea.ask_updates", code
        talk.send(word)
        assert talk.conv.profile.updates is (answer == "yes"), (code, word)


@pytest.mark.parametrize("code", ["ar", "fa"])
def test_rtl_replies_isolate_left_to_right_values(code: str) -> None:
    talk = Talk.shipped()
    for line in ["👋", NAMES[code], "1", "1", "1", IDEAS[code], "1", "1"]:
        talk.send(line)
    assert talk.node == "idea.summary"
    replies = talk.send("1")  # send the idea
    thanks = replies[0]
    assert f"{FSI}K7Q-3MX{PDI}" in thanks
    numbered = talk.send("xyz")[-1]
    assert f"{FSI}1{PDI} " in numbered  # numbered options stay in order in RTL


def test_ltr_replies_have_no_isolates() -> None:
    talk = Talk.shipped()
    for line in ["👋", "Deutsch", "1", "1", "1", IDEAS["de"], "1", "1"]:
        talk.send(line)
    thanks = talk.send("1")[0]
    assert "K7Q-3MX" in thanks and FSI not in thanks


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("de", "2. Januar 2022"),
        ("tr", "2 Ocak 2022"),
        ("en", "January 2, 2022"),
        ("ar", "يناير"),
        ("fa", "ژانویه"),
        ("uk", "січня"),
        ("ru", "января"),
        ("pl", "stycznia"),
        ("vi", "tháng 1"),
        ("de-x-ls", "2. Januar 2022"),
    ],
)
def test_dates_in_each_language(code: str, expected: str) -> None:
    assert expected in format_value(CATALOGS.get(code), date(2022, 1, 2))


def test_numbers_and_datetimes_follow_the_locale() -> None:
    assert format_value(CATALOGS.get("de"), 10000) == "10.000"
    assert format_value(CATALOGS.get("en"), 10000) == "10,000"
    assert format_value(CATALOGS.get("pl"), 10000) == "10\xa0000"
    when = datetime(2022, 1, 2, 18, 0, tzinfo=UTC)
    assert format_value(CATALOGS.get("de"), when) == "2. Januar 2022, 18:00"


@pytest.mark.parametrize(
    ("code", "numbers", "nplurals"),
    [
        ("ar", [0, 1, 2, 3, 11, 100], 6),
        ("pl", [1, 2, 5], 3),
        ("ru", [1, 2, 5], 3),
        ("uk", [1, 2, 5], 3),
        ("tr", [1, 2], 2),
        ("fa", [1, 2], 2),
        ("de", [1, 2], 2),
        ("vi", [1, 7], 1),
    ],
)
def test_plural_forms_follow_each_languages_rules(code: str, numbers: list[int], nplurals: int) -> None:
    """Every plural form is translated and ngettext picks the one the language's rule names."""
    import gettext

    lang = FLOWS.language(code)
    assert lang is not None
    with open(po_path(SHIPPED_I18N_DIR, lang.catalog), "rb") as fh:
        catalog = read_po(fh, locale=lang.locale)
    one = "That is a bit short. Please write at least {min} character."
    many = "That is a bit short. Please write at least {min} characters."
    forms = catalog.get(one).string
    assert catalog.num_plurals == nplurals and len(forms) == nplurals and all(forms)
    rule = gettext.c2py(catalog.plural_expr)
    tr = CATALOGS.get(code)
    for n in numbers:
        assert tr.ngettext(one, many, n) == forms[rule(n)]
    assert {rule(n) for n in numbers} == set(range(nplurals))  # the numbers cover every category


# --- whole dialogues in every language, web chat and terminal ------------------------------------


async def _post(http: TestClient, client: str, text: str) -> dict:
    resp = await http.post("/webchat/api/messages", json={"client_id": client, "text": text})
    assert resp.status == 200
    return await resp.json()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("code", CODES)
async def test_idea_and_feedback_in_the_web_chat(http: TestClient, kz: Kiezstimme, code: str) -> None:
    client = f"browser-{code}-01"
    body = await _post(http, client, "👋")
    assert [c["label"] for c in body["messages"][0]["choices"]] == [NAMES[c] for c in CODES]
    texts: list[str] = []
    steps = [NAMES[code], "yes", "idea", "climate", IDEAS[code], "pankow", "yes", "send", "skip", "skip", "yes"]
    steps += ["agree", IDEAS[code], "disagree", "skip", "unsure", "skip", "agree", "skip"]
    for step in steps:
        body = await _post(http, client, step)
        assert body["messages"], (code, step)
        for m in body["messages"]:
            assert m["lang"] == code, (step, m)
            assert m["dir"] == ("rtl" if code in ("ar", "fa") else "ltr")
            texts.append(m["text"])
    assert_in_language(code, texts)
    async with kz.db.read() as conn:
        idea = (await conn.execute(select(Idea.language, Idea.topic, Idea.district, Idea.text))).one()
        ratings = (
            await conn.execute(
                select(Feedback.statement, Feedback.rating, Feedback.comment, Feedback.language).order_by(Feedback.id)
            )
        ).all()
    assert tuple(idea) == (code, "climate", "pankow", IDEAS[code])
    assert [(r.rating, r.language) for r in ratings] == [
        ("agree", code),
        ("disagree", code),
        ("unsure", code),
        ("agree", code),
    ]
    assert ratings[0].comment == IDEAS[code] and ratings[1].comment == ""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("code", CODES)
def test_idea_and_feedback_in_the_terminal(database_url: str, tmp_path: Path, code: str) -> None:
    lines = ["...", NAMES[code], "1", "1", "2", IDEAS[code], "3", "1", "1", "10", "6"]  # who speaks: skipped
    lines += ["1", "1", "1", "2", "1", "3", "1", "1", "1"]
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "chat"],
        cwd=ROOT,
        env=env,
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    answers = result.stdout.split("\n\n")
    first_after_choice = next(i for i, a in enumerate(answers) if "Tiếng Việt" in a) + 1
    assert_in_language(code, answers[first_after_choice:])
    export = subprocess.run(
        [sys.executable, "-m", "bot", "export", "feedback", "--format", "json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert export.returncode == 0, export.stderr
    assert export.stdout.count(f'"language": "{code}"') == 4


def test_voice_note_as_feedback_comment() -> None:
    talk = Talk.shipped(accepts_media=True)
    for line in ["👋", "Deutsch", "1", "2", "1"]:
        talk.send(line)
    assert talk.node == "feedback.statements"
    talk.send(media=Media(kind="voice", ref="v/1.ogg", mime="audio/ogg", size=3000))
    stored = talk.effects[-1]
    assert stored.statement == "services-online" and stored.rating == "agree" and stored.media[0].kind == "voice"


def test_no_keyword_hides_an_answer_or_a_choice() -> None:
    """A keyword wins over any answer, so no keyword may also be an answer word or label."""
    from bot.conversation import texts as M
    from bot.conversation.engine import Engine
    from bot.conversation.matching import normalise
    from bot.conversation.matching import words as _words

    engine = Engine(FLOWS, CATALOGS)
    answers: dict[str, str] = {}
    for tr in CATALOGS:
        for ctx, msgid in (M.YES_WORDS, M.NO_WORDS, M.CONTINUE_WORDS, M.RESTART_WORDS):
            for word in _words(tr.pgettext(ctx, msgid)):
                answers[word] = f"{tr.language.code} answer {msgid.split('|')[0]}"
        for node in FLOWS.nodes.values():
            for choice in FLOWS.choices_of(node) + node.choices:
                answers[normalise(tr.gettext(choice.label))] = f"{tr.language.code} label {choice.label}"
        for label in (M.SKIP, M.RESUME_CONTINUE, M.RESUME_RESTART, M.DELETE_YES, M.DELETE_NO):
            answers[normalise(tr.gettext(label))] = f"{tr.language.code} label {label}"
    clashes = {word: where for word, where in answers.items() if word in engine._keywords}
    assert not clashes
