"""The conversation service on real databases (SQLite file and PostgreSQL)."""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from pathlib import Path

from sqlalchemy import func, select

from bot.app import Kiezstimme, build
from bot.participation.export import export_ideas
from bot.storage.db import Database
from bot.storage.models import (
    ChannelIdentity,
    Consent,
    Idea,
    InboundMessage,
    OutboundMessage,
    Resident,
    Session,
)
from bot.values import Inbound
from tests.conftest import Clock, make_settings

IDEA = "Mehr Bäume und Schatten auf dem Hermannplatz"
DIALOGUE_DE = ["👋", "1", "1", "1", "6", IDEA, "8", "1", "1"]


def msg(text: str, address: str = "client-0001", channel: str = "webchat") -> Inbound:
    return Inbound(channel=channel, address=address, provider_id=uuid.uuid4().hex, text=text)


async def talk(kz: Kiezstimme, lines: list[str], address: str = "client-0001", channel: str = "webchat") -> list[str]:
    out: list[str] = []
    for line in lines:
        await kz.service.handle(msg(line, address, channel))
        out.extend(m.text for m in await kz.service.take_pending(channel, address))
    return out


async def count(db: Database, model: type) -> int:
    async with db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(model))).scalar_one()


async def test_full_dialogue_stores_the_idea(kz: Kiezstimme) -> None:
    replies = await talk(kz, DIALOGUE_DE)
    thanks = next(r for r in replies if "Ihre Nummer ist" in r)
    reference = thanks.split("Ihre Nummer ist ")[1][:7]
    assert "welche Gruppe Sie beschreibt" in replies[-1]  # who speaks, voluntary (tests/test_who_speaks.py)
    async with kz.db.read() as conn:
        idea = (await conn.execute(select(Idea.__table__))).one()
        resident = (await conn.execute(select(Resident.__table__))).one()
        consent = (await conn.execute(select(Consent.__table__))).one()
    assert (idea.reference, idea.text, idea.topic, idea.district, idea.language, idea.channel, idea.status) == (
        reference,
        IDEA,
        "housing",
        "neukoelln",
        "de",
        "webchat",
        "new",
    )
    assert resident.language == "de" and resident.updates_opt_in and resident.consent_version == "2026-11"
    assert consent.version == "2026-11"
    # every inbound message is processed and its text is not kept
    async with kz.db.read() as conn:
        rows = (await conn.execute(select(InboundMessage.status, InboundMessage.payload, InboundMessage.address))).all()
    assert {r.status for r in rows} == {"done"} and len(rows) == len(DIALOGUE_DE)
    assert all(r.payload is None and r.address is None for r in rows)


async def test_redelivered_message_has_no_second_effect(kz: Kiezstimme) -> None:
    await talk(kz, DIALOGUE_DE[:-1])
    final = msg("1")
    assert await kz.service.handle(final) is not None
    again = Inbound(channel=final.channel, address=final.address, provider_id=final.provider_id, text="1")
    assert await kz.service.handle(again) is None
    assert await count(kz.db, Idea) == 1
    assert await count(kz.db, InboundMessage) == len(DIALOGUE_DE)


async def test_before_consent_only_language_is_kept(kz: Kiezstimme) -> None:
    await talk(kz, ["👋", "2"])
    async with kz.db.read() as conn:
        resident = (await conn.execute(select(Resident.__table__))).one()
        session = (await conn.execute(select(Session.state))).scalar_one()
    assert resident.language == "en" and resident.consented_at is None
    assert session["node"] == "main.consent" and session["vars"] == {"language": "en"}


async def test_declining_consent_stores_nothing(kz: Kiezstimme) -> None:
    replies = await talk(kz, ["👋", "2", "2"])
    assert "stored nothing" in replies[-1]
    for model in (Resident, ChannelIdentity, Session, Consent, Idea):
        assert await count(kz.db, model) == 0, model.__name__
    # the goodbye was still delivered (delivery log), with no resident attached
    async with kz.db.read() as conn:
        last = (await conn.execute(select(OutboundMessage).order_by(OutboundMessage.id.desc()))).first()
    assert last.resident_id is None and last.status == "delivered"


async def test_delete_erases_resident_ideas_and_media(kz: Kiezstimme, tmp_path: Path) -> None:
    await talk(kz, DIALOGUE_DE)
    await talk(kz, ["MENU", "1", "2", "Noch eine Idee für mehr Radwege", "1", "1"])
    assert await count(kz.db, Idea) == 2
    media = tmp_path / "media" / "x" / "voice.ogg"
    media.parent.mkdir(parents=True)
    media.write_bytes(b"OggS")
    async with kz.db.transaction() as conn:
        await conn.execute(
            Idea.__table__.update().values(
                media=[{"kind": "voice", "ref": "x/voice.ogg", "mime": "audio/ogg", "size": 4}]
            )
        )
    replies = await talk(kz, ["LÖSCHEN", "1"])
    assert "gelöscht" in replies[-1]
    for model in (Resident, ChannelIdentity, Session, Consent, Idea):
        assert await count(kz.db, model) == 0, model.__name__
    assert not media.exists()
    out = io.StringIO()
    assert await export_ideas(kz.db, kz.settings, "json", out) == 0
    # writing again starts afresh, as a new resident
    replies = await talk(kz, ["👋"])
    assert "Please choose your language" in replies[0]


async def test_stop_is_stored_and_nothing_is_sent_until_start(kz: Kiezstimme) -> None:
    await talk(kz, DIALOGUE_DE[:4])
    assert "keine Nachrichten mehr" in (await talk(kz, ["STOPP"]))[0]
    async with kz.db.read() as conn:
        assert (await conn.execute(select(Resident.stopped_at))).scalar_one() is not None
    before = await count(kz.db, OutboundMessage)
    assert await talk(kz, ["1", "Hallo", "MENÜ", "HILFE"]) == []
    assert await count(kz.db, OutboundMessage) == before
    replies = await talk(kz, ["START"])
    assert replies[0].startswith("Willkommen zurück")
    async with kz.db.read() as conn:
        assert (await conn.execute(select(Resident.stopped_at))).scalar_one() is None


async def test_two_messages_at_once_lose_no_answer(kz: Kiezstimme) -> None:
    """Both messages are applied, one after the other, whatever the order."""
    await talk(kz, DIALOGUE_DE[:4])  # at the topic question
    async with kz.db.read() as conn:
        v0 = (await conn.execute(select(Session.version))).scalar_one()
    a, b = msg("2"), msg("Mehr Bäume in unserer Straße bitte")
    ids = [await kz.service.receive(m) for m in (a, b)]
    await asyncio.gather(*(kz.service.process(i) for i in ids))
    async with kz.db.read() as conn:
        version, state = (await conn.execute(select(Session.version, Session.state))).one()
        statuses = (await conn.execute(select(InboundMessage.status).where(InboundMessage.id.in_(ids)))).scalars().all()
    assert version == v0 + 2
    assert statuses == ["done", "done"]
    # a then b: topic chosen, idea taken -> district. b then a: the idea typed at the topic
    # question is kept and offered ("use this as your idea?"), and "2" declines it -> the topic again
    assert (state["node"], state["vars"].get("topic")) in {("idea.district", "climate"), ("idea.topic", None)}


async def test_two_processes_on_one_database_keep_every_answer(
    db: Database, database_url: str, tmp_path: Path, clock: Clock
) -> None:
    """Two services with separate engines (as two processes) and the same resident."""
    first = build(make_settings(database_url, tmp_path), clock=clock, db=db)
    other_db = Database(database_url)
    second = build(make_settings(database_url, tmp_path), clock=clock, db=other_db)
    try:
        await talk(first, DIALOGUE_DE[:4])
        messages = [msg(t) for t in ("2", "Mehr Bäume in unserer Straße bitte", "HILFE", "MENÜ")]
        ids = [await first.service.receive(m) for m in messages]
        await asyncio.gather(
            *(svc.service.process(i) for svc, i in zip([first, second, first, second], ids, strict=True))
        )
        async with db.read() as conn:
            version = (await conn.execute(select(Session.version))).scalar_one()
            statuses = (
                (await conn.execute(select(InboundMessage.status).where(InboundMessage.id.in_(ids)))).scalars().all()
            )
        assert version == 4 + len(messages)
        assert statuses == ["done"] * 4
    finally:
        await other_db.dispose()


async def test_export_is_pseudonymous_and_spreadsheet_safe(kz: Kiezstimme) -> None:
    await talk(
        kz,
        ["👋", "2", "1", "1", "3", '=HYPERLINK("http://evil") more trees please', "13", "2", "1"],
        address="client-aaaa1",
    )
    await talk(kz, DIALOGUE_DE, address="client-bbbb2")
    out = io.StringIO()
    assert await export_ideas(kz.db, kz.settings, "json", out) == 2
    records = json.loads(out.getvalue())
    assert [r["language"] for r in records] == ["en", "de"]
    first = records[0]
    assert set(first) == {
        "reference",
        "text",
        "topic",
        "district",
        "language",
        "channel",
        "created_at",
        "status",
        "media",
        "resident",
        "topic_label",
        "district_label",
    }
    assert first["district"] is None and first["topic"] == "administration" and first["channel"] == "webchat"
    assert first["created_at"] == "2026-11-26T10:00:00+01:00"  # Europe/Berlin, with offset
    assert first["resident"].startswith("r-") and first["resident"] != records[1]["resident"]
    dump = out.getvalue()
    assert "client-aaaa1" not in dump and "client-bbbb2" not in dump

    out = io.StringIO()
    await export_ideas(kz.db, kz.settings, "csv", out)
    csv_text = out.getvalue()
    assert csv_text.startswith(
        "\ufeffreference,text,topic,district,language,channel,created_at,status,media,resident,"
        "topic_label,district_label\r\n"
    )
    assert "'=HYPERLINK" in csv_text and ",=HYPERLINK" not in csv_text
    assert "client-" not in csv_text


async def test_a_database_error_that_is_logged_shows_no_address(db: Database) -> None:
    """SQL parameters stay out of error messages (they end up in logs): both engines."""
    import pytest
    from sqlalchemy import text

    secret = "+4915112345678"
    query = text("SELECT * FROM no_such_table WHERE address = :a")
    with pytest.raises(Exception) as caught:  # a unit of work (the synchronous engine on SQLite)
        await db.run(lambda conn: conn.execute(query, {"a": secret}), write=False)
    assert secret not in str(caught.value)
    with pytest.raises(Exception) as caught:  # the async engine
        async with db.read() as conn:
            await conn.execute(query, {"a": secret})
    assert secret not in str(caught.value)
