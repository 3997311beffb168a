"""A resident's rights in the chat where they are: DATA shows what is stored about
them (in their language, split over several SMS where one is not enough) on every
channel, and a new version of the privacy notice is agreed to before anything new
is stored. End to end through the real webhook routes and the fakes, on SQLite and
PostgreSQL."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from sqlalchemy import func, select

from bot.conversation.session import Conversation, Profile
from bot.storage.models import Idea, Resident
from channels.sms_text import segments
from tests import test_channels
from tests.helpers import Talk
from tests.test_channels import Stack, texts

fakes, stack = test_channels.fakes, test_channels.stack  # the running bot and its provider fakes (fixtures)

IDEA = "Mehr Bänke und Schatten am Landwehrkanal, bitte"
# consent, menu: idea, topic, the idea, district, no updates, send
WALK = ["Hallo", "ja", "Idee", "Verkehr", IDEA, "Wedding", "nein", "Absenden"]
# where residents can send photos, the photo question comes after the idea: "nein" skips it
WALK_MEDIA = [*WALK[:5], "nein", *WALK[5:]]


async def reference_of(stack: Stack) -> str:
    async with stack.kz.db.read() as conn:
        return str((await conn.execute(select(Idea.reference))).scalar_one())


def assert_data_report(report: str, reference: str) -> None:
    assert "Das speichert Kiezstimme über Sie" in report
    assert reference in report and IDEA in report
    assert "2026-11" in report  # the version of the privacy notice they agreed to
    assert "Deutsch" in report
    assert "LÖSCHEN" in report  # how to erase it


async def test_data_on_the_web_chat(stack: Stack) -> None:
    client = "data-client-" + os.urandom(4).hex()

    async def say(text: str) -> list[str]:
        response = await stack.http.post("/webchat/api/messages", json={"client_id": client, "text": text})
        assert response.status == 200
        return [m["text"] for m in (await response.json())["messages"]]

    for line in WALK:
        await say(line)
    replies = await say("DATEN")
    report = "\n".join(replies)
    assert_data_report(report, await reference_of(stack))
    assert "Web-Chat" in report  # the channel named in the resident's language
    assert "data-client" not in report  # the address itself is never shown back


async def test_data_by_sms_is_split_and_within_the_segment_cap(stack: Stack) -> None:
    number = "+4915112349911"
    for body in WALK:
        assert await stack.sms(number, body) == 200
    before = len(stack.tw.sent_to(number))
    assert await stack.sms(number, "DATEN") == 200
    await stack.settle()
    sent = [m["Body"] for m in stack.tw.sent_to(number)[before:]]
    report = "\n".join(sent)
    assert_data_report(report, await reference_of(stack))
    assert number not in report and "4915112349911" not in report
    assert all(segments(body)[1] <= 6 for body in sent)  # each SMS within the channel's cap


async def test_data_on_telegram_and_whatsapp(stack: Stack) -> None:
    chat = 77001
    for line in WALK_MEDIA:
        assert await stack.tg_text(chat, line) == 200
    assert await stack.tg_text(chat, "DATEN") == 200
    await stack.settle()
    report = "\n".join(texts(stack.tg, chat))
    assert "Das speichert Kiezstimme über Sie" in report and "Telegram" in report and str(chat) not in report
    number = "+4917611223344"
    for line in WALK_MEDIA:
        assert await stack.whatsapp(number, line) == 200
    assert await stack.whatsapp(number, "MEINE DATEN") == 200
    await stack.settle()
    wa = "\n".join(m.get("Body", "") for m in stack.tw.sent_to("whatsapp:" + number))
    assert "Das speichert Kiezstimme über Sie" in wa and "WhatsApp" in wa


async def test_data_before_consent_shows_that_nothing_was_agreed(stack: Stack) -> None:
    number = "+4915112349912"
    assert await stack.sms(number, "Hallo") == 200
    assert await stack.sms(number, "DATEN") == 200
    await stack.settle()
    report = "\n".join(m["Body"] for m in stack.tw.sent_to(number))
    assert "Das speichert Kiezstimme über Sie" in report and "Einwilligung: nicht erteilt" in report
    async with stack.kz.db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(Idea))).scalar_one() == 0
        assert (await conn.execute(select(Resident.consented_at))).scalar_one() is None


# --- a new version of the privacy notice ----------------------------------------------------------


def test_a_new_notice_version_is_agreed_to_before_anything_new_is_stored() -> None:
    talk = Talk.shipped(now=datetime(2026, 11, 26, 9, 0, tzinfo=UTC))
    talk.conv = Conversation(profile=Profile(language="de", consent_outdated=True))
    reply = talk.say("Idee")
    assert "Datenschutz" in reply and talk.node == "main.consent"
    assert not talk.effects
    talk.send("ja")
    assert talk.conv.profile.consented and not talk.conv.profile.consent_outdated
    assert talk.node == "main.menu"


def test_after_agreeing_again_the_resident_is_back_where_they_were() -> None:
    talk = Talk.shipped()
    talk.send("Hallo")
    talk.send("ja")
    talk.send("Idee")
    assert talk.node == "idea.topic"
    talk.conv.profile.consent_outdated = True  # the notice changed while they were away
    talk.conv.profile.consented = False
    talk.send("Verkehr")
    assert talk.node == "main.consent"
    talk.send("ja")
    assert talk.node == "idea.topic"  # the question they were at, again


def test_the_channels_are_listed_in_the_residents_language() -> None:
    from bot.conversation import texts as M
    from bot.conversation.render import format_value
    from bot.conversation.step import Msg
    from tests.helpers import shipped

    _, catalogs = shipped()
    channels = ("Telegram", Msg(M.CHANNEL_WEBCHAT))
    assert format_value(catalogs.get("de"), channels) == "Telegram und Web-Chat"
    assert format_value(catalogs.get("en"), channels) == "Telegram and web chat"
    arabic = format_value(catalogs.get("ar"), channels)
    assert "الدردشة على الموقع" in arabic and "web chat" not in arabic
