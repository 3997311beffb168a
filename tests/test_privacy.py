"""Promises about personal data, checked where they are kept: after DELETE (confirmed)
or a declined consent, no table row and no media file names or reaches the
resident — on SMS, WhatsApp, Telegram and the web chat, with the real webhook
routes, the inbox, the engine and the sender against the fake providers — and
the goodbye still reaches them. Also: ideas kept as anonymous text, and one
current rating per resident and statement (with the migration that makes it so).
Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import secrets
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select, text

from bot.app import Kiezstimme
from bot.conversation.step import EraseResident
from bot.participation.export import export_feedback, export_ideas
from bot.storage.db import Database, alembic_config
from bot.storage.models import Base, ChannelIdentity, Feedback, Idea, OutboundMessage, Resident
from bot.storage.residents import ResidentRepository
from bot.values import Media
from tests import test_channels as live
from tests.conftest import PG_ADMIN_URL, Clock
from tests.fakes.telegram import make_photo_update, make_text_update
from tests.fakes.twilio import status_callback_params

# the running bot with fake Telegram and Twilio (see tests/test_channels.py)
fakes = live.fakes
stack = live.stack
Stack = live.Stack

IDEA = "Ein Trinkbrunnen vor der Bibliothek am Wasserturm"
GOODBYE = "Alle Ihre Daten sind gelöscht"
DECLINED = "Wir haben nichts gespeichert"
JPEG = b"\xff\xd8\xff\xe0" + b"\x10" * 3000


# --- looking everywhere ---------------------------------------------------------------------


def _as_text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


async def find_anywhere(db: Database, needles: list[str]) -> list[str]:
    """Every (table.column = value) in the whole database whose text contains one of the needles."""
    hits = []
    async with db.read() as conn:
        for table in Base.metadata.sorted_tables:
            for row in (await conn.execute(select(table))).mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    shown = _as_text(value)
                    hits += [f"{table.name}.{column} = {shown!r}" for n in needles if n and n in shown]
    return hits


def media_files(tmp_path: Path) -> list[Path]:
    root = tmp_path / "media"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


async def pseudonym_of(db: Database, channel: str, address: str) -> str:
    async with db.read() as conn:
        return (
            await conn.execute(
                select(Resident.pseudonym)
                .join(ChannelIdentity, ChannelIdentity.resident_id == Resident.id)
                .where(ChannelIdentity.channel == channel, ChannelIdentity.address == db.keys.index(channel, address))
            )
        ).scalar_one()


async def assert_forgotten(db: Database, tmp_path: Path, needles: list[str]) -> None:
    assert await find_anywhere(db, needles) == []
    assert media_files(tmp_path) == []
    async with db.read() as conn:
        for model in (Resident, ChannelIdentity, Idea, Feedback):
            assert (await conn.execute(select(func.count()).select_from(model))).scalar_one() == 0, model


# --- SMS and WhatsApp (fake Twilio) -------------------------------------------------------------


async def _twilio_talk(stack: Stack, channel: str, number: str, bodies: list[str]) -> None:
    for body in bodies:
        if channel == "sms":
            assert await stack.sms(number, body) == 200
        else:
            assert await stack.whatsapp(number, body) == 200


def _twilio_received(stack: Stack, channel: str, number: str) -> list[str]:
    to = number if channel == "sms" else "whatsapp:" + number
    return [m.get("Body") or m.get("ContentVariables", "") for m in stack.tw.sent_to(to)]


async def _status_callback_still_works(stack: Stack) -> None:
    """A delivery report for the (emptied) goodbye arrives later: found by its provider id, no error."""
    async with stack.kz.db.read() as conn:
        goodbye = (await conn.execute(select(OutboundMessage).order_by(OutboundMessage.id.desc()))).first()
    assert goodbye.status == "sent" and goodbye.provider_id and goodbye.resident_id is None
    assert goodbye.address is None and goodbye.text == "" and goodbye.inbound_id is not None
    params = status_callback_params(goodbye.provider_id, "delivered")
    assert await stack.twilio("/webhooks/twilio/status", params) == 200
    async with stack.kz.db.read() as conn:
        status = (await conn.execute(select(OutboundMessage.status).where(OutboundMessage.id == goodbye.id))).scalar()
    assert status == "delivered"


@pytest.mark.parametrize("channel", ["sms", "whatsapp"])
async def test_delete_on_twilio_leaves_nothing_but_the_goodbye_arrives(
    stack: Stack, tmp_path: Path, channel: str
) -> None:
    number = "+4915790001234"
    if channel == "sms":
        await _twilio_talk(stack, channel, number, ["Hallo", "1", "1", "2", IDEA, "3", "1", "1"])
    else:
        await _twilio_talk(stack, channel, number, ["Hallo", "1", "1", "2", IDEA])
        url = stack.tw.add_media("ME77/photo.jpg", JPEG, "image/jpeg")
        await stack.whatsapp(number, "", media=[(url, "image/jpeg")])  # the optional photo
        await _twilio_talk(stack, channel, number, ["3", "1", "1"])
        assert len(media_files(tmp_path)) == 1
    assert any("Ihre Nummer ist" in b for b in _twilio_received(stack, channel, number))
    pseudonym = await pseudonym_of(stack.kz.db, channel, number)
    needles = [number, number.lstrip("+"), IDEA, pseudonym]
    assert await find_anywhere(stack.kz.db, needles)  # the search finds them while they are there

    await _twilio_talk(stack, channel, number, ["LÖSCHEN", "1"])

    assert GOODBYE in _twilio_received(stack, channel, number)[-1]  # delivered, as free text on WhatsApp too
    assert "ContentSid" not in stack.tw.sent_to(number if channel == "sms" else "whatsapp:" + number)[-1]
    await assert_forgotten(stack.kz.db, tmp_path, needles)
    await _status_callback_still_works(stack)
    await assert_forgotten(stack.kz.db, tmp_path, needles)


@pytest.mark.parametrize("channel", ["sms", "whatsapp"])
async def test_declining_consent_on_twilio_stores_nothing(stack: Stack, tmp_path: Path, channel: str) -> None:
    number = "+4915790005678"
    await _twilio_talk(stack, channel, number, ["Hallo"])
    pseudonym = await pseudonym_of(stack.kz.db, channel, number)
    await _twilio_talk(stack, channel, number, ["2"])
    assert DECLINED in _twilio_received(stack, channel, number)[-1]
    await assert_forgotten(stack.kz.db, tmp_path, [number, number.lstrip("+"), pseudonym])
    await _status_callback_still_works(stack)


async def test_a_goodbye_that_fails_is_emptied_too(stack: Stack, tmp_path: Path) -> None:
    number = "+4915790009999"
    await stack.sms(number, "Hallo")
    stack.tw.fail_to(number, 400, 21211)  # the number became invalid: a permanent failure
    await stack.sms(number, "2")
    async with stack.kz.db.read() as conn:
        goodbye = (await conn.execute(select(OutboundMessage).order_by(OutboundMessage.id.desc()))).first()
    assert goodbye.status == "failed" and goodbye.address is None and goodbye.text == ""
    assert await find_anywhere(stack.kz.db, [number, number.lstrip("+")]) == []


# --- Telegram -------------------------------------------------------------------------------------


async def test_delete_on_telegram_leaves_nothing_but_the_goodbye_arrives(stack: Stack, tmp_path: Path) -> None:
    chat = 7315550199
    await stack.tg_text(chat, "Hallo")
    for data in ["yes", "idea", "mobility"]:
        await stack.tg_press(chat, data)
    await stack.tg_text(chat, IDEA)
    stack.tg.add_file("photo-77", JPEG, file_path="photos/file_77.jpg")
    await stack.telegram(make_photo_update(stack.next_id(), chat, "photo-77", file_size=len(JPEG)))
    for data in ["mitte", "yes", "send"]:
        await stack.tg_press(chat, data)
    assert any("Ihre Nummer ist" in t for t in live.texts(stack.tg, chat))
    assert len(media_files(tmp_path)) == 1
    async with stack.kz.db.read() as conn:
        assert (await conn.execute(select(Idea.media))).scalar_one()[0]["kind"] == "photo"
    pseudonym = await pseudonym_of(stack.kz.db, "telegram", str(chat))
    needles = [str(chat), IDEA, pseudonym]
    assert await find_anywhere(stack.kz.db, needles)

    await stack.tg_text(chat, "LÖSCHEN")
    await stack.tg_press(chat, "yes")

    assert GOODBYE in live.texts(stack.tg, chat)[-1]
    await assert_forgotten(stack.kz.db, tmp_path, needles)


async def test_declining_consent_on_telegram_stores_nothing(stack: Stack, tmp_path: Path) -> None:
    chat = 7315550200
    await stack.telegram(make_text_update(stack.next_id(), chat, "/start plakat-42"))
    pseudonym = await pseudonym_of(stack.kz.db, "telegram", str(chat))
    await stack.tg_press(chat, "no")
    assert DECLINED in live.texts(stack.tg, chat)[-1]
    await assert_forgotten(stack.kz.db, tmp_path, [str(chat), pseudonym, "plakat-42"])


async def test_a_photo_nobody_asked_for_leaves_no_file(stack: Stack, tmp_path: Path) -> None:
    chat = 7315550201
    await stack.tg_text(chat, "Hallo")  # asked for consent
    stack.tg.add_file("photo-78", JPEG, file_path="photos/file_78.jpg")
    await stack.telegram(make_photo_update(stack.next_id(), chat, "photo-78", file_size=len(JPEG)))
    assert stack.tg.calls_to("getFile")  # it was fetched ...
    assert media_files(tmp_path) == []  # ... and not kept, as no answer refers to it
    for data in ["yes", "idea", "mobility"]:
        await stack.tg_press(chat, data)
    await stack.tg_text(chat, IDEA)
    await stack.telegram(make_photo_update(stack.next_id(), chat, "photo-78", file_size=len(JPEG)))
    assert len(media_files(tmp_path)) == 1  # the photo the idea asked for stays until the idea goes


# --- the web chat ---------------------------------------------------------------------------------


async def _web(stack: Stack, client: str, text_: str) -> list[str]:
    body = {"client_id": client, "text": text_, "message_id": secrets.token_hex(8)}  # as the page sends it
    resp = await stack.http.post("/webchat/api/messages", json=body)
    assert resp.status == 200, await resp.text()
    return [m["text"] for m in (await resp.json())["messages"]]


async def test_delete_in_the_web_chat_leaves_nothing_but_the_goodbye_arrives(stack: Stack, tmp_path: Path) -> None:
    client = "browser-privacy-0001"
    replies = []
    for line in ["👋", "1", "1", "1", "6", IDEA, "8", "1", "1"]:
        replies += await _web(stack, client, line)
    assert any("Ihre Nummer ist" in r for r in replies)
    pseudonym = await pseudonym_of(stack.kz.db, "webchat", client)
    needles = [client, IDEA, pseudonym]
    assert await find_anywhere(stack.kz.db, needles)

    await _web(stack, client, "LÖSCHEN")
    goodbye = await _web(stack, client, "1")

    assert GOODBYE in goodbye[-1]  # handed to the page in the answer
    await assert_forgotten(stack.kz.db, tmp_path, needles)
    assert await _web(stack, "browser-privacy-0002", "👋")  # the next resident is served as usual


async def test_declining_consent_in_the_web_chat_stores_nothing(stack: Stack, tmp_path: Path) -> None:
    client = "browser-privacy-0003"
    await _web(stack, client, "👋")
    await _web(stack, client, "1")
    pseudonym = await pseudonym_of(stack.kz.db, "webchat", client)
    assert DECLINED in (await _web(stack, client, "2"))[-1]
    await assert_forgotten(stack.kz.db, tmp_path, [client, pseudonym])


# --- ideas kept as anonymous text ---------------------------------------------------------------


async def _service_talk(kz: Kiezstimme, client: str, lines: list[str]) -> list[str]:
    from tests.test_service import talk

    return await talk(kz, lines, address=client)


async def test_keep_ideas_leaves_the_text_without_resident_or_media(kz: Kiezstimme, tmp_path: Path) -> None:
    """The engine's ``EraseResident(keep_ideas=True)`` (however the dialogue comes to it)."""
    client = "client-keep-0001"
    await _service_talk(kz, client, ["👋", "1", "1", "1", "6", IDEA, "8", "1", "1"])
    photo = tmp_path / "media" / "2026" / "11" / "photo.jpg"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(JPEG)
    async with kz.db.transaction() as conn:
        await conn.execute(
            Idea.__table__.update().values(
                media=[{"kind": "photo", "ref": "2026/11/photo.jpg", "mime": "image/jpeg", "size": len(JPEG)}]
            )
        )
    pseudonym = await pseudonym_of(kz.db, "webchat", client)

    step = kz.service.engine.step

    def keeping(*args: Any, **kwargs: Any) -> Any:
        outcome = step(*args, **kwargs)
        outcome.effects = [
            dataclasses.replace(e, keep_ideas=True) if isinstance(e, EraseResident) else e for e in outcome.effects
        ]
        return outcome

    kz.service.engine.step = keeping  # type: ignore[method-assign]
    replies = await _service_talk(kz, client, ["LÖSCHEN", "1"])
    assert GOODBYE in replies[-1]

    async with kz.db.read() as conn:
        idea = (await conn.execute(select(Idea.__table__))).one()
    assert idea.text == IDEA and idea.resident_id is None and idea.media == []
    assert media_files(tmp_path) == []
    hits = await find_anywhere(kz.db, [client, pseudonym, IDEA])
    assert hits == [f"ideas.text = {IDEA!r}"]  # the idea's own text, nowhere else (no summary in the outbox)
    out = io.StringIO()
    assert await export_ideas(kz.db, kz.settings, "json", out) == 1
    record = json.loads(out.getvalue())[0]
    assert record["text"] == IDEA and record["resident"] is None and record["media"] == []
    out = io.StringIO()
    await export_ideas(kz.db, kz.settings, "csv", out)
    assert ",new,,," in out.getvalue().splitlines()[1]  # empty media and resident cells, then the labels


async def test_delete_without_keeping_ideas_deletes_them(kz: Kiezstimme, tmp_path: Path) -> None:
    client = "client-keep-0002"
    await _service_talk(kz, client, ["👋", "1", "1", "1", "6", IDEA, "8", "1", "1"])
    await _service_talk(kz, client, ["LÖSCHEN", "1"])
    assert await find_anywhere(kz.db, [client, IDEA]) == []


# --- feedback: one current rating per resident and statement ---------------------------------


async def _resident(db: Database, clock: Clock, address: str = "client-rate-0001") -> int:
    repo = ResidentRepository(db)
    return int((await db.run(lambda conn: repo.create(conn, "webchat", address, clock.now))).id)


async def test_rating_again_updates_the_one_rating(kz: Kiezstimme, clock: Clock, tmp_path: Path) -> None:
    contributions = kz.service.contributions
    rid = await _resident(kz.db, clock)
    voice = Media(kind="voice", ref="2026/11/comment.ogg", mime="audio/ogg", size=4)

    def rate(rating: str, comment: str = "", media: tuple[Media, ...] = ()) -> Any:
        return lambda conn: contributions.store_feedback(
            conn,
            resident_id=rid,
            statement="s1",
            rating=rating,
            comment=comment,
            language="de",
            channel="webchat",
            media=media,
            now=clock.now,
        )

    first = clock.now
    assert await kz.db.run(rate("agree")) == []
    clock.advance(seconds=30)
    assert await kz.db.run(rate("agree", "Mehr davon", (voice,))) == []  # the comment to the rating
    clock.advance(days=2)
    orphaned = await kz.db.run(rate("disagree"))  # the dialogue again: a new rating, no comment yet
    assert orphaned == [voice.ref]  # the earlier voice comment's file is no longer referenced

    async with kz.db.read() as conn:
        rows = (await conn.execute(select(Feedback.__table__))).all()
    assert len(rows) == 1
    row = rows[0]
    assert (row.rating, row.comment, row.media) == ("disagree", "", [])
    assert row.created_at == first and row.updated_at == clock.now and row.updated_at > row.created_at

    other = await _resident(kz.db, clock, "client-rate-0002")
    await kz.db.run(
        lambda conn: contributions.store_feedback(
            conn,
            resident_id=other,
            statement="s1",
            rating="unsure",
            comment="",
            language="en",
            channel="webchat",
            media=(),
            now=clock.now,
        )
    )
    out = io.StringIO()
    assert await export_feedback(kz.db, kz.settings, "json", out) == 2  # one per resident
    records = json.loads(out.getvalue())
    assert list(records[0]) == [
        "statement",
        "rating",
        "comment",
        "media",
        "language",
        "channel",
        "created_at",
        "updated_at",
        "resident",
        "statement_label",
        "rating_label",
    ]
    assert records[0]["created_at"] == "2026-11-26T10:00:00+01:00"
    assert records[0]["updated_at"] == "2026-11-28T10:00:30+01:00"
    out = io.StringIO()
    await export_feedback(kz.db, kz.settings, "csv", out)
    assert out.getvalue().startswith(
        "\ufeffstatement,rating,comment,media,language,channel,created_at,updated_at,resident,"
        "statement_label,rating_label\r\n"
    )


async def test_rating_through_the_service_replaces_the_files_it_no_longer_needs(
    kz: Kiezstimme, clock: Clock, tmp_path: Path
) -> None:
    """A StoreFeedback effect whose update drops a voice comment unlinks that file after the commit."""
    from bot.conversation.step import StoreFeedback

    client = "client-rate-0003"
    await _service_talk(kz, client, ["👋", "1", "1"])  # consented, at the menu
    voice = tmp_path / "media" / "2026" / "11" / "comment.ogg"
    voice.parent.mkdir(parents=True)
    voice.write_bytes(b"OggS")
    effects = [
        StoreFeedback("s1", "agree", "", "de", (Media("voice", "2026/11/comment.ogg", "audio/ogg", 4),)),
        StoreFeedback("s1", "unsure", "", "de"),
    ]
    step = kz.service.engine.step

    def rating(*args: Any, **kwargs: Any) -> Any:
        outcome = step(*args, **kwargs)
        outcome.effects = outcome.effects + [effects.pop(0)]
        return outcome

    kz.service.engine.step = rating  # type: ignore[method-assign]
    await _service_talk(kz, client, ["MENU"])
    assert voice.exists()
    clock.advance(minutes=1)
    await _service_talk(kz, client, ["MENU"])
    assert not voice.exists()
    async with kz.db.read() as conn:
        rows = (await conn.execute(select(Feedback.rating, Feedback.created_at, Feedback.updated_at))).all()
    assert (
        len(rows) == 1
        and rows[0].rating == "unsure"
        and rows[0].updated_at - rows[0].created_at == timedelta(minutes=1)
    )


# --- the migration -----------------------------------------------------------------------------


def _upgrade(conn: Any, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, revision)


async def _fresh_database(database_url: str, tmp_path: Path) -> tuple[Database, str | None]:
    """An empty database of the parametrised kind (a new PostgreSQL database, dropped afterwards)."""
    if database_url.startswith("sqlite"):
        return Database(f"sqlite:///{tmp_path / 'migrating.db'}"), None
    import asyncpg

    # the database_url fixture has made sure there is a server (or skipped)
    name = f"kiezstimme_migration_{os.getpid()}_{secrets.token_hex(3)}"
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return Database(PG_ADMIN_URL.rpartition("/")[0] + "/" + name), name


async def _drop(name: str | None) -> None:
    if name is None:
        return
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def test_migration_keeps_the_newest_rating_and_lets_ideas_lose_their_resident(
    database_url: str, tmp_path: Path
) -> None:
    db, name = await _fresh_database(database_url, tmp_path)
    try:
        async with db.engine.begin() as conn:
            await conn.run_sync(_upgrade, "0004")
            await conn.execute(
                text(
                    "INSERT INTO residents (id, pseudonym, updates_opt_in, created_at)"
                    " VALUES (1, 'r-one', false, '2026-11-01 10:00:00'), (2, 'r-two', false, '2026-11-01 10:00:00')"
                )
            )
            rows = [  # (id, resident, statement, rating, created_at)
                (1, 1, "s1", "agree", "2026-11-02 10:00:00"),
                (2, 1, "s1", "disagree", "2026-11-03 10:00:00"),  # the newest of resident 1 on s1
                (3, 1, "s1", "unsure", "2026-11-02 12:00:00"),
                (4, 1, "s2", "agree", "2026-11-02 10:00:00"),
                (5, 2, "s1", "unsure", "2026-11-04 10:00:00"),
                (6, 2, "s1", "agree", "2026-11-04 10:00:00"),  # the same time: the later row wins
            ]
            for row in rows:
                await conn.execute(
                    text(
                        "INSERT INTO feedback (id, resident_id, statement, rating, comment, media, language,"
                        " channel, created_at) VALUES (:id, :rid, :st, :rating, '', '[]', 'de', 'sms', :at)"
                    ),
                    dict(
                        zip(
                            ["id", "rid", "st", "rating", "at"],
                            row[:4] + (datetime.fromisoformat(row[4]),),
                            strict=True,
                        )
                    ),
                )
        await db.migrate()
        async with db.engine.connect() as conn:
            kept = (await conn.execute(text("SELECT id, rating, updated_at FROM feedback ORDER BY id"))).all()
            await conn.execute(
                text(
                    "INSERT INTO ideas (reference, resident_id, text, topic, language, channel, media, status,"
                    " created_at) VALUES ('AAA-AAA', NULL, 'anonym', 'mobility', 'de', 'sms', '[]', 'new',"
                    " '2026-11-05 10:00:00')"
                )
            )
            diff = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync), Base.metadata))
            await conn.rollback()
        assert [(r.id, r.rating) for r in kept] == [(2, "disagree"), (4, "agree"), (6, "agree")]
        assert all(str(r.updated_at).startswith("2026-11-0") for r in kept)  # the time it was given
        assert [d for d in diff if "feedback" in repr(d) or "ideas" in repr(d)] == []  # the models match
    finally:
        await db.dispose()
        await _drop(name)


async def test_the_unique_rating_is_enforced_by_the_database(db: Database, clock: Clock) -> None:
    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    rid = await _resident(db, clock)
    values = {
        "resident_id": rid,
        "statement": "s1",
        "rating": "agree",
        "comment": "",
        "media": [],
        "language": "de",
        "channel": "webchat",
        "created_at": clock.now,
        "updated_at": clock.now,
    }
    await db.run(lambda conn: conn.execute(insert(Feedback), values))
    with pytest.raises(IntegrityError):
        await db.run(lambda conn: conn.execute(insert(Feedback), values))
