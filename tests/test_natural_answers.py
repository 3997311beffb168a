"""A corpus of natural answers — the way residents really type — driven through the real
channels: the web chat API, Telegram (typed text, never buttons) and SMS, against the
loopback fakes of tests/fakes, on SQLite and PostgreSQL (the ``stack`` fixture of
tests/test_channels.py).

Every walk checks that the resident reaches the question the corpus expects after each
answer (so nothing has to be typed twice), that no "not understood" reply was sent, that
every reply is in the language the resident chose (never English or German instead; Arabic,
Farsi, Ukrainian and Russian replies in their script), and at the end that the idea is stored
with the topic, district, language and channel the words meant.

Yes/no/unsure words are read from the catalogs (``texts.YES_WORDS`` … as translated in
``i18n/*/LC_MESSAGES/kiezstimme.po``), not copied here. Every language goes through the web
chat; a representative subset through Telegram and SMS, which go through the outbox sender.
The long word lists (every answer word of every catalog, every district and topic word) run
on SQLite only: they test understanding, which the walks also check on PostgreSQL.

The tests at the end guard the misunderstandings this corpus found (a long yes taken for an
idea, "I don't know" read as "no", everyday words for yes, no and idea).
"""

from __future__ import annotations

import functools
import itertools
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from bot.config import SHIPPED_I18N_DIR
from bot.conversation import texts as M
from bot.conversation.i18n import Contextual, read_catalog
from bot.storage.models import Feedback, Idea, Resident
from channels.sms_text import prefer_gsm7
from tests import test_channels
from tests.conftest import OPEN_FLOWS
from tests.helpers import shipped
from tests.test_channels import Stack

fakes, stack = test_channels.fakes, test_channels.stack  # the running bot and its provider fakes (fixtures)

FLOWS, CATALOGS = shipped(OPEN_FLOWS)
LANGS = [lang.code for lang in FLOWS.languages]
SCRIPTS = {"ar": "ARABIC", "fa": "ARABIC", "uk": "CYRILLIC", "ru": "CYRILLIC"}
MARKS = dict.fromkeys(map(ord, "\u200e\u200f\u2066\u2067\u2068\u2069\u061c"), None)


# --- what the catalogs say --------------------------------------------------------------------


def answer_words(lang: str, entry: Contextual) -> list[str]:
    """The words of one ``answer`` entry in a language, as its translator wrote them."""
    raw = CATALOGS.get(lang).pgettext(entry.context, entry.msgid)
    return [w.strip() for w in raw.split("|") if w.strip()]


def yes_words(lang: str) -> list[str]:
    return answer_words(lang, M.YES_WORDS)


def no_words(lang: str) -> list[str]:
    return answer_words(lang, M.NO_WORDS)


def unsure_words(lang: str) -> list[str]:
    return answer_words(lang, M.UNSURE_WORDS)


def variants(word: str) -> list[str]:
    """How people also type a word: capitalised, shouting, with an exclamation mark; a thumb
    with a skin tone."""
    out = [word]
    if word.upper() != word:
        out += [word.upper(), word[:1].upper() + word[1:] + "!"]
    if word == "👍":
        out += ["👍🏽", "👍🏿", "👍️"]
    return out


def plain(text: str) -> str:
    """A reply as compared here: without bidi marks and isolates, one space between words."""
    return " ".join(text.translate(MARKS).split())


def opening(text: str, sms: bool = False) -> str:
    """How a text starts, up to its first placeholder or line: enough to recognise it."""
    if sms:
        text = prefer_gsm7(text)
    return plain(text.split("{")[0].split("\n")[0])[:40].strip()


def t(lang: str, msgid: str) -> str:
    return CATALOGS.get(lang).gettext(msgid)


def prompt_of(lang: str, node_id: str, sms: bool = False) -> str:
    """The opening of a node's question, as the channel sends it."""
    node = FLOWS.nodes[node_id]
    text = node.sms_text if sms and node.sms_text else node.text
    return opening(t(lang, text or ""), sms)


def _pot_msgids() -> list[str]:
    catalog = read_catalog(SHIPPED_I18N_DIR / "kiezstimme.pot")
    return [m.id for m in catalog if isinstance(m.id, str) and m.id and not m.context]


MSGIDS = _pot_msgids()


@functools.cache
def foreign_openings(lang: str, sms: bool) -> set[str]:
    """Openings of English and German texts that this language says differently: a reply
    starting with one is in a language the resident did not choose."""
    own = {opening(t(lang, m), sms) for m in MSGIDS}
    found = set()
    for other in ("en", "de"):
        if other == lang:
            continue
        for m in MSGIDS:
            o = opening(t(other, m), sms)
            if len(o) >= 12 and o != opening(t(lang, m), sms) and o not in own:
                found.add(o)
    return found


@functools.cache
def miss_openings(sms: bool) -> set[str]:
    """Openings of every "not understood" text (and the help after repeated misses), in every language."""
    out = set()
    for lang in LANGS:
        for msgid in (M.NOT_UNDERSTOOD, M.NOT_UNDERSTOOD_BUTTONS, M.CHOOSE_FROM, M.STUCK):
            o = opening(t(lang, msgid), sms)
            if o:
                out.add(o)
    return out


# --- residents on each channel ----------------------------------------------------------------

_ids = itertools.count(1)


@dataclass
class Resident_:
    """One resident on one channel; ``send`` returns the replies to one message."""

    stack: Stack
    channel: str  # webchat | telegram | sms
    hint: str | None = None  # web chat lang / Telegram language_code
    transcript: list[tuple[str, list[str]]] = field(default_factory=list)
    web_langs: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = next(_ids)
        self.address = {
            "webchat": f"natural-{n:06d}",
            "telegram": str(700_000 + n),
            "sms": f"+49151{n:08d}",
        }[self.channel]

    @property
    def sms(self) -> bool:
        return self.channel == "sms"

    async def send(self, text: str) -> list[str]:
        if self.channel == "webchat":
            body: dict[str, Any] = {"client_id": self.address, "text": text}
            if self.hint and not self.transcript:
                body["lang"] = self.hint
            resp = await self.stack.http.post("/webchat/api/messages", json=body)
            assert resp.status == 200, await resp.text()
            messages = (await resp.json())["messages"]
            replies = [m["text"] for m in messages]
            self.web_langs.append([m["lang"] for m in messages])
        elif self.channel == "telegram":
            chat = int(self.address)
            before = len(self.stack.tg.sent_messages(chat))
            assert await self.stack.tg_text(chat, text, lang=self.hint or "") == 200
            replies = [m["text"] for m in self.stack.tg.sent_messages(chat)[before:]]
        else:
            before = len(self.stack.tw.sent_to(self.address))
            assert await self.stack.sms(self.address, text) == 200
            replies = [m["Body"] for m in self.stack.tw.sent_to(self.address)[before:]]
        self.transcript.append((text, replies))
        return replies

    def show(self) -> str:
        return "\n".join(f"> {said}\n" + "\n".join(f"  < {r!r}" for r in replies) for said, replies in self.transcript)


def joined(replies: list[str]) -> str:
    return plain("\n".join(replies))


def assert_understood(res: Resident_, replies: list[str]) -> None:
    text = joined(replies)
    for o in miss_openings(res.sms):
        assert o not in text, f"not understood ({o!r}):\n{res.show()}"


def assert_in_language(res: Resident_, lang: str, typed: list[str], from_step: int = 0) -> None:
    """Every reply since the language was chosen is in ``lang``."""
    foreign = foreign_openings(lang, res.sms)
    for i, (_, replies) in enumerate(res.transcript[from_step:], start=from_step):
        for reply in replies:
            for line in reply.split("\n"):
                line = plain(line)
                hit = next((o for o in foreign if line.startswith(o)), None)
                assert hit is None, f"reply in another language than {lang} ({hit!r}):\n{res.show()}"
            if lang in SCRIPTS:
                rest = reply
                for word in [*typed, "Kiezstimme"]:
                    rest = rest.replace(word, " ")
                letters = [ch for ch in rest if ch.isalpha()]
                ours = [ch for ch in letters if unicodedata.name(ch, "").startswith(SCRIPTS[lang])]
                assert len(ours) >= 0.7 * len(letters), f"{lang} reply not in its script: {reply!r}\n{res.show()}"
        if res.channel == "webchat" and i < len(res.web_langs):
            assert set(res.web_langs[i]) <= {lang}, f"web chat marked {res.web_langs[i]} for {lang}:\n{res.show()}"


async def step(res: Resident_, said: str, expect: str, *, was: str | None = None) -> list[str]:
    """Send one answer; the replies must contain ``expect`` (an opening) and, unless the
    same question is expected again, not the question just answered (``was``)."""
    replies = await res.send(said)
    text = joined(replies)
    assert_understood(res, replies)
    assert expect in text, f"expected {expect!r} after {said!r}:\n{res.show()}"
    if was and was != expect:
        assert was not in text, f"{was!r} asked again after {said!r}:\n{res.show()}"
    return replies


async def stored_idea(stack: Stack, text: str) -> Any:
    async with stack.kz.db.read() as conn:
        rows = (
            await conn.execute(
                select(Idea.reference, Idea.text, Idea.topic, Idea.district, Idea.language, Idea.channel).where(
                    Idea.text == text
                )
            )
        ).all()
    assert len(rows) == 1, f"ideas stored with this text: {rows}"
    return rows[0]


# --- the corpus: how residents of each language answer ------------------------------------------


@dataclass(frozen=True)
class Corpus:
    first: tuple[str, ...]  # the first message(s) until the consent question is asked
    menu: str  # picks "Share an idea" at the menu
    topic: tuple[str, str]  # a word for the field, and the topic it means
    idea: str
    district: tuple[str, str]  # how the district is written, and the district it means
    skip_photo: str  # Telegram asks for an optional photo


CORPUS: dict[str, Corpus] = {
    "de": Corpus(
        ("Hallo",),
        "Idee",
        ("verkehr", "mobility"),
        "Mehr Fahrradbügel vor der Grundschule in der Wiener Straße",
        ("Kreuzberg", "friedrichshain-kreuzberg"),
        "nein",
    ),
    "en": Corpus(
        ("Hi",),
        "idea",
        ("bus", "mobility"),
        "More benches and shade on the square by the station",
        ("Wedding", "mitte"),
        "skip",
    ),
    "tr": Corpus(
        ("Merhaba",),
        "fikir",
        ("otobüs", "mobility"),
        "Parkta daha fazla ağaç ve bank olsun lütfen",
        ("Neukoln", "neukoelln"),
        "atla",
    ),
    "ar": Corpus(
        ("مرحبا",),
        "فكرة",
        ("حديقة", "climate"),
        "نحتاج إلى مزيد من الأشجار في الحديقة القريبة",
        ("Moabit", "mitte"),
        "لا",
    ),
    "fa": Corpus(
        ("درود",),
        "ایده",
        ("مدرسه", "education"),
        "مدرسه‌های بیشتری در محله ما لازم است",
        ("prenzlauer berg", "pankow"),
        "نه",
    ),
    "uk": Corpus(
        ("Привіт",),
        "поділитися",
        ("житло", "housing"),
        "Потрібно більше дитячих майданчиків у нашому районі",
        ("Панков", "pankow"),
        "ні",
    ),
    "ru": Corpus(
        ("Привет",),
        "поделиться",
        ("врач", "health"),
        "Нужно больше врачей, говорящих на разных языках",
        ("Кройцберг", "friedrichshain-kreuzberg"),
        "нет",
    ),
    "pl": Corpus(
        ("Cześć",),
        "pomysł",
        ("rower", "mobility"),
        "Potrzebujemy więcej ścieżek rowerowych w naszej dzielnicy",
        ("Charlotenburg", "charlottenburg-wilmersdorf"),
        "pomiń",
    ),
    "vi": Corpus(
        ("Xin chào",),
        "chia se y tuong",
        ("cây xanh", "climate"),
        "Chúng tôi cần thêm cây xanh ở công viên gần nhà",
        ("Köpenick", "treptow-koepenick"),
        "bỏ qua",
    ),
    "de-x-ls": Corpus(
        ("SPRACHE", "Leichte Sprache"),
        "Idee",
        ("Schule", "education"),
        "Mehr Bänke zum Ausruhen an der Bushaltestelle",
        ("neukolln", "neukoelln"),
        "nein",
    ),
}
TELEGRAM_LANGS = ["de", "ar", "uk", "pl"]
SMS_LANGS = ["de", "tr", "ru", "fa", "vi"]


async def walk(stack: Stack, channel: str, lang: str) -> Resident_:
    """The idea dialogue from the first message to the reference, every answer typed once, in words."""
    c = CORPUS[lang]
    hint = {"telegram": lang}.get(channel)
    res = Resident_(stack, channel, hint=hint)
    sms = res.sms
    first = c.first
    if channel == "telegram" and lang == "de-x-ls":
        first = ("Hallo",)
    for said in first[:-1]:
        await res.send(said)
    lang_from = len(first) - 1
    consent = prompt_of(lang, "main.consent", sms)
    menu = prompt_of(lang, "main.menu", sms)
    topic = prompt_of(lang, "idea.topic", sms)
    text = prompt_of(lang, "idea.idea_text", sms)
    district = prompt_of(lang, "idea.district", sms)
    updates = prompt_of(lang, "idea.ask_updates", sms)
    summary = prompt_of(lang, "idea.summary", sms)
    thanks = prompt_of(lang, "idea.thanks", sms)
    yes, no = yes_words(lang), no_words(lang)
    await step(res, first[-1], consent)
    await step(res, variants(yes[0])[-1], menu, was=consent)  # "Ja!", "Evet!", "نعم"
    await step(res, c.menu, topic, was=menu)
    await step(res, c.topic[0], text, was=topic)
    if channel == "telegram":
        await step(res, c.idea, prompt_of(lang, "idea.photo"), was=text)
        await step(res, c.skip_photo, district)
    else:
        await step(res, c.idea, district, was=text)
    await step(res, c.district[0], updates, was=district)
    await step(res, no[0], summary, was=updates)
    replies = await step(res, "👍🏽", thanks, was=summary)
    row = await stored_idea(stack, c.idea)
    assert (row.topic, row.district, row.language, row.channel) == (c.topic[1], c.district[1], lang, channel)
    assert row.reference in joined(replies), res.show()
    typed = [said for said, _ in res.transcript] + [t(lang, "Mitte")]
    assert_in_language(res, lang, typed, from_step=lang_from)
    return res


@pytest.mark.parametrize("lang", LANGS)
async def test_walk_in_words_through_the_web_chat(stack: Stack, lang: str) -> None:
    await walk(stack, "webchat", lang)


@pytest.mark.parametrize("lang", TELEGRAM_LANGS)
async def test_walk_in_words_through_telegram(stack: Stack, lang: str) -> None:
    res = await walk(stack, "telegram", lang)
    assert stack.tg.calls_to("answerCallbackQuery") == []  # typed, never pressed
    assert len(res.transcript) == 9


@pytest.mark.parametrize("lang", SMS_LANGS)
async def test_walk_in_words_by_sms(stack: Stack, lang: str) -> None:
    await walk(stack, "sms", lang)


# --- every answer word of every catalog ------------------------------------------------------------


async def start(stack: Stack, lang: str, channel: str = "webchat") -> Resident_:
    """A resident of ``lang`` at the consent question."""
    res = Resident_(stack, channel, hint=lang if lang == "de-x-ls" else None)
    first = CORPUS[lang].first if lang != "de-x-ls" else ("Hallo",)
    for said in first[:-1]:
        await res.send(said)
    await step(res, first[-1], prompt_of(lang, "main.consent", res.sms))
    return res


SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # word matching, not storage


@SQLITE_ONLY
@pytest.mark.parametrize("lang", LANGS)
async def test_every_yes_no_and_unsure_word_of_the_catalog(stack: Stack, lang: str) -> None:
    """Each yes word (and its variants) agrees at the consent question; each no word
    declines; at a statement of the draft each yes, no and unsure word is a rating."""
    consent, menu = prompt_of(lang, "main.consent"), prompt_of(lang, "main.menu")
    declined = opening(t(lang, FLOWS.nodes["main.declined"].text or ""))
    # each word once, in turn as written, shouting, capitalised with "!"; the thumb with skin tones too
    yes = [variants(w)[i % len(variants(w))] for i, w in enumerate(yes_words(lang))] + ["👍🏽", "👍🏿", "👍️"]
    for word in yes:
        res = await start(stack, lang)
        await step(res, word, menu, was=consent)
        assert_in_language(res, lang, [word])
    for word in no_words(lang):
        res = await start(stack, lang)
        await step(res, word, declined, was=consent)
    # ratings: four statements per resident, each rating followed by the optional comment (skipped)
    rate = prompt_of(lang, "feedback.statements")
    comment = opening(t(lang, FLOWS.nodes["feedback.statements"].comment_text or ""))
    skip = answer_words(lang, M.SKIP_WORDS)[0]
    expected = (
        [("agree", w) for w in yes_words(lang)]
        + [("disagree", w) for w in no_words(lang)]
        + [("unsure", w) for w in unsure_words(lang)]
    )
    for i in range(0, len(expected), 4):
        res = await start(stack, lang)
        await step(res, yes_words(lang)[0], menu)
        await step(res, "2", rate, was=menu)
        for _, word in expected[i : i + 4]:
            await step(res, word, comment)
            await res.send(skip)
            assert_understood(res, res.transcript[-1][1])
        assert_in_language(res, lang, [w for _, w in expected])
    async with stack.kz.db.read() as conn:
        ratings = Counter((await conn.execute(select(Feedback.rating))).scalars())
    assert ratings == Counter(r for r, _ in expected)


# --- districts, typos and topic words ----------------------------------------------------------------

DISTRICTS = [  # (typed at the district question, the district it means)
    ("Kreuzberg", "friedrichshain-kreuzberg"),
    ("Wedding", "mitte"),
    ("neukolln", "neukoelln"),
    ("Neukoln", "neukoelln"),
    ("Charlotenburg", "charlottenburg-wilmersdorf"),
    ("prenzlauer berg", "pankow"),
    ("Moabit", "mitte"),
    ("Köpenick", "treptow-koepenick"),
    ("köpenick", "treptow-koepenick"),
    ("ich wohne im Wedding", "mitte"),
    ("Steglitz", "steglitz-zehlendorf"),
    ("SPANDAU!", "spandau"),
]
TOPICS = [  # (typed at the topic question, the topic it means)
    ("verkehr", "mobility"),
    ("Radwege", "mobility"),
    ("bus", "mobility"),
    ("Bäume", "climate"),
    ("baume", "climate"),
    ("Spielplatz", "housing"),
    ("Miete", "housing"),
    ("Schule", "education"),
    ("Kita", "education"),
    ("Arzt", "health"),
    ("Bürgeramt", "administration"),
    ("Umwelt", "climate"),
]


@SQLITE_ONLY
async def test_districts_and_topics_in_residents_words(stack: Stack) -> None:
    """Ortsteile, parts of labels, missing umlauts and small typos pick the district;
    everyday words pick the topic — each stored with the idea."""
    for n, ((said_topic, topic), (said_district, district)) in enumerate(zip(TOPICS, DISTRICTS, strict=True)):
        res = await start(stack, "de")
        idea = f"Idee Nummer {n}: mehr Bänke und Schatten für alle"
        await step(res, "Ja", prompt_of("de", "main.menu"))
        await step(res, "Idee", prompt_of("de", "idea.topic"))
        await step(res, said_topic, prompt_of("de", "idea.idea_text"), was=prompt_of("de", "idea.topic"))
        await step(res, idea, prompt_of("de", "idea.district"))
        await step(res, said_district, prompt_of("de", "idea.ask_updates"), was=prompt_of("de", "idea.district"))
        await step(res, "nein", prompt_of("de", "idea.summary"))
        await step(res, "ja", prompt_of("de", "idea.thanks"))
        row = await stored_idea(stack, idea)
        assert (row.topic, row.district) == (topic, district), res.show()


@pytest.mark.parametrize("channel", ["webchat", "sms"])
async def test_typo_is_confirmed_before_it_is_taken(stack: Stack, channel: str) -> None:
    res = await start(stack, "de", channel)
    sms = res.sms
    idea = "Der Görlitzer Park braucht mehr Licht am Abend"
    await step(res, "Ja", prompt_of("de", "main.menu", sms))
    await step(res, "Idee", prompt_of("de", "idea.topic", sms))
    await step(res, "Umwelt", prompt_of("de", "idea.idea_text", sms))
    await step(res, idea, prompt_of("de", "idea.district", sms))
    replies = await step(res, "Kreuzbreg", opening(t("de", M.DID_YOU_MEAN), sms))
    assert "Meinten Sie Friedrichshain-Kreuzberg?" in joined(replies), res.show()
    assert prompt_of("de", "idea.ask_updates", sms) not in joined(replies)  # not taken before the yes
    await step(res, "ja", prompt_of("de", "idea.ask_updates", sms))
    await step(res, "Nein, danke", prompt_of("de", "idea.summary", sms))
    await step(res, "Ja", prompt_of("de", "idea.thanks", sms))
    row = await stored_idea(stack, idea)
    assert row.district == "friedrichshain-kreuzberg"


async def test_typo_answered_no_asks_the_district_again(stack: Stack) -> None:
    res = await start(stack, "de")
    await step(res, "Ja", prompt_of("de", "main.menu"))
    await step(res, "Idee", prompt_of("de", "idea.topic"))
    await step(res, "Umwelt", prompt_of("de", "idea.idea_text"))
    await step(res, "Mehr Licht im Park am Abend", prompt_of("de", "idea.district"))
    await step(res, "Kreuzbreg", "Meinten Sie")
    replies = await res.send("nein")
    assert prompt_of("de", "idea.district") in joined(replies), res.show()  # asked again, nothing taken
    await step(res, "Pankow", prompt_of("de", "idea.ask_updates"))


# --- ideas typed where a choice was expected ---------------------------------------------------------


@pytest.mark.parametrize("channel", ["webchat", "telegram"])
async def test_idea_typed_at_the_menu_is_offered_and_kept_word_for_word(stack: Stack, channel: str) -> None:
    idea = "Wir brauchen mehr Bänke – und Schatten! – am Hermannplatz, bitte."
    res = Resident_(stack, channel, hint="de" if channel == "telegram" else None)
    await step(res, "Hallo", prompt_of("de", "main.consent"))
    await step(res, "Ja", prompt_of("de", "main.menu"))
    offer = prompt_of("de", "main.offer_kept_idea")
    replies = await step(res, idea, offer, was=prompt_of("de", "main.menu"))
    assert plain(idea) in joined(replies), res.show()
    await step(res, "ja", prompt_of("de", "idea.topic"), was=offer)
    after_topic = prompt_of("de", "idea.photo") if channel == "telegram" else prompt_of("de", "idea.district")
    replies = await step(res, "Spielplatz", after_topic)
    assert prompt_of("de", "idea.idea_text") not in joined(replies)  # the idea question is skipped
    if channel == "telegram":
        await step(res, "nein", prompt_of("de", "idea.district"))
    await step(res, "Neukölln", prompt_of("de", "idea.ask_updates"))
    await step(res, "Ja, gerne", prompt_of("de", "idea.summary"))
    await step(res, "Absenden", prompt_of("de", "idea.thanks"))
    row = await stored_idea(stack, idea)
    assert (row.topic, row.district, row.channel) == ("housing", "neukoelln", channel)


async def test_idea_offered_at_the_menu_and_declined_goes_back_to_the_menu(stack: Stack) -> None:
    res = await start(stack, "de")
    await step(res, "Ja", prompt_of("de", "main.menu"))
    await step(res, "Wir brauchen mehr Bänke und Schatten am Hermannplatz", prompt_of("de", "main.offer_kept_idea"))
    await step(res, "nein", prompt_of("de", "main.menu"))
    await step(res, "Idee", prompt_of("de", "idea.topic"))
    await step(res, "Bänke", prompt_of("de", "idea.idea_text"))  # asked for the idea now: nothing was kept


FIRST_IDEA = "Die Parkplätze in unserer Straße sind immer zugeparkt, wir brauchen mehr Fahrradbügel"


@pytest.mark.parametrize("channel", ["webchat", "sms"])
async def test_first_message_is_an_idea(stack: Stack, channel: str) -> None:
    """No greeting, no hint: German is recognised from the sentence, consent is asked,
    then the sentence is offered as the idea and stored unchanged."""
    res = Resident_(stack, channel)
    sms = res.sms
    await step(res, FIRST_IDEA, prompt_of("de", "main.consent", sms))
    replies = await step(res, "Ja", prompt_of("de", "main.offer_kept_idea", sms))
    assert plain(prefer_gsm7(FIRST_IDEA) if sms else FIRST_IDEA) in joined(replies), res.show()
    await step(res, "ja", prompt_of("de", "idea.topic", sms))
    await step(res, "Radwege", prompt_of("de", "idea.district", sms))
    await step(res, "Wedding", prompt_of("de", "idea.ask_updates", sms))
    await step(res, "nö", prompt_of("de", "idea.summary", sms))
    await step(res, "✅", prompt_of("de", "idea.thanks", sms))
    row = await stored_idea(stack, FIRST_IDEA)
    assert (row.topic, row.district, row.language, row.channel) == ("mobility", "mitte", "de", channel)
    assert_in_language(res, "de", [FIRST_IDEA])


# --- greetings choose the language ------------------------------------------------------------------

GREETINGS = [  # (first message, the language it is in)
    ("Hi", "en"),
    ("Hello!", "en"),
    ("hey", "en"),
    ("Good morning", "en"),
    ("Hallo", "de"),
    ("Moin", "de"),
    ("Guten Tag!", "de"),
    ("Merhaba", "tr"),
    ("Selam", "tr"),
    ("مرحبا", "ar"),
    ("السلام عليكم", "ar"),
    ("درود", "fa"),
    ("Привіт", "uk"),
    ("Добрий день", "uk"),
    ("Привет", "ru"),
    ("Здравствуйте", "ru"),
    ("Cześć", "pl"),
    ("Dzień dobry", "pl"),
    ("Xin chào", "vi"),
]


@pytest.mark.parametrize("channel", ["webchat", "sms"])
async def test_greetings_choose_the_language(stack: Stack, channel: str) -> None:
    for greeting, lang in GREETINGS:
        res = Resident_(stack, channel)
        await step(res, greeting, prompt_of(lang, "main.consent", res.sms))
        assert_in_language(res, lang, [greeting])
    async with stack.kz.db.read() as conn:
        languages = Counter((await conn.execute(select(Resident.language))).scalars())
    assert languages == Counter(lang for _, lang in GREETINGS)


# --- Telegram: typed instead of pressed -------------------------------------------------------------


async def test_telegram_typed_ja_instead_of_the_button(stack: Stack) -> None:
    chat = 880_001
    await stack.tg_text(chat, "Hallo")
    shown = stack.tg.sent_messages(chat)[-1]
    assert [b["callback_data"] for row in shown["reply_markup"]["inline_keyboard"] for b in row] == ["yes", "no"]
    await stack.tg_text(chat, "Ja")
    sent = test_channels.texts(stack.tg, chat)
    assert sent[-1].startswith(prompt_of("de", "main.menu")), sent
    assert stack.tg.calls_to("answerCallbackQuery") == []
    assert not any(o in "\n".join(sent) for o in miss_openings(False))
    async with stack.kz.db.read() as conn:
        assert (await conn.execute(select(Resident.consented_at))).scalar_one() is not None


# --- answers that were misunderstood when this corpus was written (now understood) ------------------
# Found with this corpus and fixed in the engine and catalogs while it was written; kept as tests:
# a long yes at consent was "not understood" and later offered as an idea; "Ich möchte eine Idee
# einreichen" at the menu was offered as the idea itself; a district in a sentence of five words
# was "not understood"; "не знаю"/"لا أعرف" at consent declined it; "nee", "jaa", "yeah", "yep",
# "идея", "ідея" and "chia sẻ" were "not understood".


async def test_long_yes_at_consent_is_a_yes(stack: Stack) -> None:
    res = await start(stack, "de")
    await step(res, "Ja, ich bin damit einverstanden", prompt_of("de", "main.menu"))


async def test_long_yes_at_consent_is_never_offered_as_an_idea(stack: Stack) -> None:
    res = await start(stack, "de")
    await res.send("Ja, ich bin damit einverstanden")
    replies = await res.send("Ja")
    assert prompt_of("de", "main.offer_kept_idea") not in joined(replies), res.show()


async def test_wanting_to_share_an_idea_in_a_sentence_picks_the_menu_choice(stack: Stack) -> None:
    res = await start(stack, "de")
    await step(res, "Ja", prompt_of("de", "main.menu"))
    await step(res, "Ich möchte eine Idee einreichen", prompt_of("de", "idea.topic"))
    await step(res, "verkehr", prompt_of("de", "idea.idea_text"))  # their idea is still asked for


async def test_district_in_a_sentence_is_understood(stack: Stack) -> None:
    res = await start(stack, "de")
    await step(res, "Ja", prompt_of("de", "main.menu"))
    await step(res, "Idee", prompt_of("de", "idea.topic"))
    await step(res, "Umwelt", prompt_of("de", "idea.idea_text"))
    await step(res, "Mehr Licht im Park am Abend", prompt_of("de", "idea.district"))
    await step(res, "Ich wohne in Moabit nahe der Turmstraße", prompt_of("de", "idea.ask_updates"))


@pytest.mark.parametrize(
    ("lang", "said"),
    [
        ("ru", "не знаю"),
        ("uk", "не знаю"),
        ("ar", "لا أعرف"),
        ("pl", "nie wiem"),
        ("vi", "không biết"),
    ],
)
async def test_i_dont_know_at_consent_is_not_a_no(stack: Stack, lang: str, said: str) -> None:
    assert said in unsure_words(lang)  # the catalog itself calls it unsure
    res = await start(stack, lang)
    replies = await res.send(said)
    assert opening(t(lang, FLOWS.nodes["main.declined"].text or "")) not in joined(replies), res.show()


@pytest.mark.parametrize(
    ("lang", "said", "expect"), [("de", "nee", "no"), ("de", "jaa", "yes"), ("en", "yeah", "yes"), ("en", "yep", "yes")]
)
async def test_everyday_yes_and_no_words(stack: Stack, lang: str, said: str, expect: str) -> None:
    res = await start(stack, lang)
    node = "main.menu" if expect == "yes" else "main.declined"
    await step(res, said, prompt_of(lang, node))


@pytest.mark.parametrize(("lang", "said"), [("ru", "идея"), ("ru", "идею"), ("uk", "ідея"), ("vi", "chia sẻ")])
async def test_everyday_word_for_idea_at_the_menu(stack: Stack, lang: str, said: str) -> None:
    res = await start(stack, lang)
    await step(res, yes_words(lang)[0], prompt_of(lang, "main.menu"))
    await step(res, said, prompt_of(lang, "idea.topic"))


async def test_polish_no_at_consent_means_yes_in_polish(stack: Stack) -> None:
    # Polish colloquial "no" is "yeah": the resident's own language goes before English
    res = await start(stack, "pl")
    await step(res, "no", prompt_of("pl", "main.menu"))
