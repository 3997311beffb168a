"""Who speaks: after their idea a resident may say which of the process's groups describes
them and their age band (flows/actors.yaml) — voluntary, skippable with each language's
skip and no words, asked once, stored apart from the idea (``profiles``, keyed by the
resident only), shown by DATA in their language and erased by DELETE.

End to end through the real webhook routes (SMS through the Twilio fake, the web chat
API) on SQLite and PostgreSQL; the understanding of every language's labels and skip
words through the pure engine."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy import delete, func, inspect, select

from bot.cli.sms_report import MAX_SEGMENTS
from bot.config import SHIPPED_FLOWS_DIR
from bot.conversation import texts as M
from bot.conversation.flow_files import load_flows
from bot.conversation.flows import FlowError
from bot.conversation.session import Conversation, Dialogue, Profile
from bot.conversation.step import StoreProfile
from bot.storage.models import Idea, Resident
from bot.storage.models import Profile as ProfileRow
from bot.storage.profiles import ProfileRepository
from channels.sms_text import segments
from tests import test_channels
from tests.helpers import Talk, shipped
from tests.test_channels import Stack

fakes, stack = test_channels.fakes, test_channels.stack  # the running bot and its provider fakes (fixtures)

FLOWS, CATALOGS = shipped()
IDEA = "Mehr Bänke und Schatten am Landwehrkanal, bitte"
# consent, menu: idea, topic, the idea, district, no updates, send
WALK = ["Hallo", "ja", "Idee", "Verkehr", IDEA, "Wedding", "nein", "Absenden"]
GROUP_QUESTION = "Welche Gruppe beschreibt Sie?"  # the SMS wording (sms_text) in German
AGE_QUESTION = "Und Ihr Alter?"
SECOND_IDEA = ["MENÜ", "Idee", "Klima", "Mehr Bäume in der Sonnenallee", "8", "nein", "Absenden"]
AFTER = "Möchten Sie uns auch Ihre Meinung"  # the idea dialogue's usual next question (feedback open)


def de(msgid: str) -> str:
    return CATALOGS.get("de").gettext(msgid)


async def sms_walk(stack: Stack, number: str, lines: list[str]) -> list[str]:
    """Send each line by SMS; the bodies the resident got back in that time."""
    before = len(stack.tw.sent_to(number))
    for line in lines:
        assert await stack.sms(number, line) == 200
    await stack.settle()
    return [m["Body"] for m in stack.tw.sent_to(number)[before:]]


async def profiles(stack: Stack) -> list[tuple[str | None, str | None]]:
    async with stack.kz.db.read() as conn:
        rows = (await conn.execute(select(ProfileRow.actor_group, ProfileRow.age_band))).all()
    return [tuple(r) for r in rows]


# --- answering, on SMS ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "age", "stored"),
    [
        ("Jugend", "2", ("youth", "18_29")),  # a word of the resident's language, the age band by its number
        ("8", "unter 18", ("youth", "under_18")),  # the group by its number in the SMS list
        ("Wissenschaft", "nein", ("science", None)),  # the age band skipped
    ],
)
async def test_the_answers_are_stored_apart_from_the_idea(
    stack: Stack, group: str, age: str, stored: tuple[str, str | None]
) -> None:
    number = "+4915112340001"
    got = await sms_walk(stack, number, WALK)
    asked = got[-1]
    assert asked.startswith(GROUP_QUESTION), got
    assert "\n8 " + de("Child or young person") in asked  # numbered on SMS
    assert segments(asked)[1] <= MAX_SEGMENTS
    assert (await sms_walk(stack, number, [group]))[-1].startswith(AGE_QUESTION)
    end = await sms_walk(stack, number, [age])
    assert end[-1].startswith(AFTER), end  # then the dialogue goes on as it always did
    assert await profiles(stack) == [stored]
    async with stack.kz.db.read() as conn:
        idea = (await conn.execute(select(Idea))).one()
        resident = (await conn.execute(select(Resident.id))).scalar_one()
        row = (await conn.execute(select(ProfileRow.resident_id))).scalar_one()
    assert row == resident and idea.text == IDEA
    # nothing ties the answers to an idea: no idea column holds them, the profile names no idea
    assert not {"actor_group", "age_band"} & set(idea._mapping)
    assert {c.name for c in inspect(ProfileRow).columns} == {"resident_id", "actor_group", "age_band", "updated_at"}


@pytest.mark.parametrize(("group", "age"), [("nein", "nein"), ("skip", "skip"), ("überspringen", "-")])
async def test_skipping_stores_nothing_and_the_dialogue_ends_as_usual(stack: Stack, group: str, age: str) -> None:
    number = "+4915112340002"
    await sms_walk(stack, number, WALK)
    assert (await sms_walk(stack, number, [group]))[-1].startswith(AGE_QUESTION)
    end = await sms_walk(stack, number, [age])
    assert len(end) == 1 and end[0].startswith(AFTER), end  # no "not understood" on the way
    assert await profiles(stack) == []
    goodbye = await sms_walk(stack, number, ["nein"])
    assert goodbye[-1].startswith(de("Thank you for taking part! Send MENU to share another idea.")[:20])


async def test_asked_once_per_resident(stack: Stack) -> None:
    number = "+4915112340003"
    await sms_walk(stack, number, [*WALK, "Behinderung", "4", "nein"])
    assert await profiles(stack) == [("disability", "45_64")]
    again = await sms_walk(stack, number, SECOND_IDEA)
    assert not any(GROUP_QUESTION in body for body in again)
    assert again[-1].startswith(AFTER), again  # straight on after the reference
    async with stack.kz.db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(Idea))).scalar_one() == 2
    assert await profiles(stack) == [("disability", "45_64")]


async def test_a_resident_who_skipped_is_asked_again_with_the_next_idea(stack: Stack) -> None:
    """Skipping stores nothing, not even that they skipped: the next idea asks once more."""
    number = "+4915112340004"
    await sms_walk(stack, number, [*WALK, "nein", "nein", "nein"])
    again = await sms_walk(stack, number, SECOND_IDEA)
    assert again[-1].startswith(GROUP_QUESTION)
    await sms_walk(stack, number, ["Flucht", "3"])
    assert await profiles(stack) == [("refugee", "30_44")]


# --- DATA and DELETE ---------------------------------------------------------------------------


async def test_data_shows_the_answers_in_the_residents_language(stack: Stack) -> None:
    client = "who-ar-" + os.urandom(4).hex()

    async def say(text: str) -> list[str]:
        response = await stack.http.post("/webchat/api/messages", json={"client_id": client, "text": text})
        assert response.status == 200
        return [m["text"] for m in (await response.json())["messages"]]

    ar = CATALOGS.get("ar")
    idea = "نحتاج مزيداً من المقاعد والظل في الحديقة"
    for line in ["مرحبا", "نعم", "1", "1", idea, "نويكولن", "2", "1"]:
        replies = await say(line)
    assert ar.gettext(FLOWS.nodes["idea.actor_group"].text or "") in replies[-1]
    await say("شباب")  # "youth": an alias of the group in Arabic
    await say("2")
    assert await profiles(stack) == [("youth", "18_29")]
    report = "\n".join(await say("DATA"))
    assert ar.gettext(M.DATA_ACTOR_GROUP).split("{")[0] in report
    assert ar.gettext("Child or young person") in report
    assert ar.gettext(M.DATA_AGE_BAND).split("{")[0] in report and "18–29" in report


async def test_data_says_not_given_for_a_skipped_part(stack: Stack) -> None:
    number = "+4915112340005"
    await sms_walk(stack, number, [*WALK, "-", "65+"])
    report = "\n".join(await sms_walk(stack, number, ["DATEN"]))
    assert de(M.DATA_ACTOR_GROUP).format(group=de(M.NONE_GIVEN)) in report
    assert de(M.DATA_AGE_BAND).format(age=de("65 or older")) in report


async def test_delete_leaves_no_profile(stack: Stack) -> None:
    number = "+4915112340006"
    await sms_walk(stack, number, [*WALK, "Jugend", "1"])
    assert await profiles(stack) == [("youth", "under_18")]
    await sms_walk(stack, number, ["LÖSCHEN", "1"])
    assert await profiles(stack) == []
    assert await stack.count(Resident) == 0


async def test_the_foreign_key_erases_a_profile_with_its_resident(stack: Stack) -> None:
    """Whatever removes a resident row (retention, an operator) takes the profile with it."""
    number = "+4915112340007"
    await sms_walk(stack, number, [*WALK, "Wirtschaft", "3"])
    assert await profiles(stack) == [("business", "30_44")]
    await stack.kz.db.run(lambda conn: conn.execute(delete(Resident)))
    assert await profiles(stack) == []


async def test_a_later_answer_replaces_the_earlier_one(stack: Stack) -> None:
    number = "+4915112340008"
    await sms_walk(stack, number, [*WALK, "Jugend", "1"])
    repo, now = ProfileRepository(), stack.clock.now
    async with stack.kz.db.read() as conn:
        resident = (await conn.execute(select(Resident.id))).scalar_one()
    await stack.kz.db.run(lambda conn: repo.save(conn, resident, "youth", "18_29", now))
    assert await profiles(stack) == [("youth", "18_29")]  # replaced, still one row
    await stack.kz.db.run(lambda conn: conn.execute(delete(ProfileRow)))
    await stack.kz.db.run(lambda conn: repo.save(conn, resident, None, "65_plus", now))
    assert await profiles(stack) == [(None, "65_plus")]  # inserted for a resident who had none


# --- understanding, every language (the pure engine) -------------------------------------------


def at_question(code: str, node: str = "idea.actor_group") -> Talk:
    talk = Talk.shipped()
    talk.conv = Conversation(profile=Profile(language=code, consented=True), dialogue=Dialogue(node=node))
    return talk


def stored(talk: Talk) -> list[StoreProfile]:
    return [e for e in talk.effects if isinstance(e, StoreProfile)]


CODES = [lang.code for lang in FLOWS.languages]


@pytest.mark.parametrize("code", CODES)
def test_every_label_picks_its_group_in_every_language(code: str) -> None:
    tr = CATALOGS.get(code)
    for group in FLOWS.options["actor_groups"]:
        for age in FLOWS.options["age_bands"]:
            talk = at_question(code)
            talk.send(tr.gettext(group.label))
            assert talk.node == "idea.age_band", (code, group.id)
            talk.send(tr.gettext(age.label))
            assert talk.node != "idea.age_band", (code, age.id)
            picked = (None if group.id == "none" else group.id, None if age.id == "none" else age.id)
            assert stored(talk) == ([] if picked == (None, None) else [StoreProfile(*picked)]), (code, picked)


@pytest.mark.parametrize("code", CODES)
def test_skip_and_no_words_skip_in_every_language(code: str) -> None:
    tr = CATALOGS.get(code)
    words = [w for w in tr.pgettext(*M.SKIP_WORDS).split("|") if w.strip()]
    words += [w for w in tr.pgettext(*M.NO_WORDS).split("|") if w.strip()]
    words.append(tr.gettext(M.SKIP))
    for word in words:
        talk = at_question(code)
        talk.send(word)
        assert talk.node == "idea.age_band", (code, word)
        talk.send(word)
        assert talk.node != "idea.age_band" and not stored(talk), (code, word)


def test_a_resident_who_told_us_is_not_asked_again() -> None:
    talk = Talk.shipped()
    talk.conv = Conversation(profile=Profile(language="en", consented=True, described=True))
    talk.conv.dialogue = Dialogue(node="idea.summary", vars={"idea": IDEA, "topic": "mobility", "district": "mitte"})
    reply = talk.say("send")
    assert "K7Q-3MX" in reply and talk.node == "idea.offer_feedback"


def test_a_word_inside_a_sentence_and_a_typo() -> None:
    talk = at_question("de")
    talk.send("Ich bin Schülerin")
    talk.send("minderjährig")
    assert stored(talk) == [StoreProfile("youth", "under_18")]
    talk = at_question("en")
    talk.send("refugee")
    talk.send("30-44")
    assert stored(talk) == [StoreProfile("refugee", "30_44")]


@pytest.mark.parametrize(
    ("code", "said", "band"),
    [("de", "34", "30_44"), ("de", "34 Jahre", "30_44"), ("en", "70", "65_plus"), ("ar", "٣٤", "30_44")]
    + [("fa", "۱۷", "under_18"), ("de", "3", "30_44")],  # "3": the list's own number comes first
)
def test_a_typed_age_picks_its_band(code: str, said: str, band: str) -> None:
    talk = at_question(code, "idea.age_band")
    talk.send(said)
    assert stored(talk) == [StoreProfile(None, band)]


def test_an_age_no_band_holds_is_not_understood() -> None:
    talk = at_question("de", "idea.age_band")
    assert de(M.NOT_UNDERSTOOD) in talk.say("131")
    assert talk.node == "idea.age_band" and not stored(talk)


# --- the categories are data, and flows check guards them ---------------------------------------


@pytest.fixture
def flows_copy(tmp_path: Path) -> Path:
    target = tmp_path / "flows"
    shutil.copytree(SHIPPED_FLOWS_DIR, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def problems(folder: Path) -> list[str]:
    with pytest.raises(FlowError) as caught:
        load_flows(folder)
    return caught.value.problems


def test_overlapping_age_bands_are_refused(flows_copy: Path) -> None:
    edit(flows_copy / "actors.yaml", "years: [30, 44]", "years: [29, 44]")
    assert any("the years of '18_29' and '30_44' overlap" in p for p in problems(flows_copy))


def test_an_alias_given_to_two_groups_is_refused(flows_copy: Path) -> None:
    edit(flows_copy / "actors.yaml", "de: [Wirtschaft,", "de: [Jugend, Wirtschaft,")
    assert any("alias 'Jugend' (de)" in p and "'business'" in p and "'youth'" in p for p in problems(flows_copy))


def test_an_optional_choice_needs_a_skip_entry(flows_copy: Path) -> None:
    edit(
        flows_copy / "actors.yaml",
        '    label: "None of these / skip"\n    means: skip',
        '    label: "None of these / skip"',
    )
    found = problems(flows_copy)
    assert any("idea.actor_group" in p and "means: skip" in p for p in found), found


def test_without_the_lists_the_question_is_refused(flows_copy: Path) -> None:
    (flows_copy / "actors.yaml").unlink()
    found = problems(flows_copy)
    assert any("'idea.actor_group'" in p and "actor_groups is missing" in p for p in found), found
