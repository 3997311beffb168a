"""Telegram, SMS and WhatsApp end to end over HTTP: the real python-telegram-bot
``Bot`` and the real ``twilio`` client against loopback fakes, on SQLite and
PostgreSQL, with the outbox sender running as in ``serve``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, insert, select

from bot.app import Kiezstimme, build
from bot.config import Settings, load_settings
from bot.storage.db import Database
from bot.storage.models import ChannelIdentity, Idea, InboundMessage, OutboundMessage, Resident
from bot.web.app import make_app
from tests.conftest import OPEN_FLOWS, TEST_DATA_KEY, Clock
from tests.fakes.telegram import (
    FakeTelegram,
    make_callback_update,
    make_edited_message_update,
    make_my_chat_member_blocked,
    make_sticker_update,
    make_text_update,
    make_voice_update,
)
from tests.fakes.twilio import FakeTwilio, inbound_sms_params, inbound_whatsapp_params, sign, status_callback_params

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "123456:TEST-token_abcdefghijklmnopqrstuv"
SECRET = "webhook-secret_0123456789"
PUBLIC = "https://bot.example.org"
SMS_FROM = "+4930901820"
WA_FROM = "whatsapp:+4930901821"
IDEA = "Mehr Bäume und Schatten auf dem Hermannplatz"


@pytest_asyncio.fixture
async def fakes() -> AsyncIterator[tuple[FakeTelegram, FakeTwilio]]:
    os.environ.pop("TWILIO_REGION", None)
    os.environ.pop("TWILIO_EDGE", None)
    async with FakeTelegram(token=TOKEN) as tg, FakeTwilio() as tw:
        yield tg, tw


class Stack:
    """The running bot with its fakes and helpers to talk to it like providers do."""

    def __init__(self, kz: Kiezstimme, http: TestClient, tg: FakeTelegram, tw: FakeTwilio, clock: Clock) -> None:
        self.kz, self.http, self.tg, self.tw, self.clock = kz, http, tg, tw, clock
        self.update_id = 1000

    # -- Telegram -------------------------------------------------------------------
    async def telegram(self, update: dict[str, Any], secret: str | None = SECRET) -> int:
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        resp = await self.http.post("/webhooks/telegram", json=update, headers=headers)
        await self.settle()
        return resp.status

    def next_id(self) -> int:
        self.update_id += 1
        return self.update_id

    async def tg_text(self, chat: int, text: str, lang: str = "de") -> int:
        return await self.telegram(make_text_update(self.next_id(), chat, text, language_code=lang))

    async def tg_press(self, chat: int, data: str) -> int:
        last = len(self.tg.calls_to("sendMessage"))
        return await self.telegram(make_callback_update(self.next_id(), chat, data, message_id=last))

    # -- Twilio -------------------------------------------------------------------------
    async def twilio(self, path: str, params: dict[str, Any], signature: str | None = "valid") -> int:
        headers = {}
        if signature == "valid":
            headers["X-Twilio-Signature"] = sign(self.tw.auth_token, PUBLIC + path, params)
        elif signature is not None:
            headers["X-Twilio-Signature"] = signature
        resp = await self.http.post(path, data=params, headers=headers)
        if resp.status == 200:
            assert (await resp.text()).endswith("<Response/>")
        await self.settle()
        return resp.status

    async def sms(self, number: str, body: str) -> int:
        return await self.twilio("/webhooks/twilio/sms", inbound_sms_params(number, SMS_FROM, body))

    async def whatsapp(self, number: str, body: str, **kw: Any) -> int:
        params = inbound_whatsapp_params(number.lstrip("+"), "Ada", body, to=WA_FROM, **kw)
        return await self.twilio("/webhooks/twilio/whatsapp", params)

    # -- waiting ------------------------------------------------------------------------
    async def settle(self, timeout: float = 10) -> None:
        """Wait until the inbox is processed and the outbox holds nothing due."""
        from bot.web import webhooks

        await self.kz.inbox.idle()
        if webhooks._background:
            await asyncio.gather(*list(webhooks._background))
        await wait_until(self.outbox_idle, timeout)

    async def outbox_idle(self) -> bool:
        async with self.kz.db.read() as conn:
            busy = (
                await conn.execute(
                    select(func.count())
                    .select_from(OutboundMessage)
                    .where(
                        OutboundMessage.status.in_(("pending", "sending")),
                        (OutboundMessage.next_attempt_at.is_(None))
                        | (OutboundMessage.next_attempt_at <= self.clock.now),
                        OutboundMessage.channel.in_(("telegram", "sms", "whatsapp")),
                    )
                )
            ).scalar_one()
        return busy == 0

    async def count(self, model: type, *where: Any) -> int:
        async with self.kz.db.read() as conn:
            return (await conn.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


def stack_settings(database_url: str, tmp_path: Path, tg: FakeTelegram, tw: FakeTwilio, **extra: str) -> Settings:
    """Every channel set up against the fakes, no rate limits (``extra``: more variables)."""
    flows = tmp_path / "flows"
    shutil.copytree(OPEN_FLOWS, flows)
    (flows / "whatsapp.yaml").write_text("templates:\n  de: HX00000000000000000000000000000de0\n", encoding="utf-8")
    return load_settings(
        {
            "DATABASE_URL": database_url,
            "DATA_KEY": TEST_DATA_KEY,
            "PUBLIC_URL": PUBLIC,
            "FLOWS_DIR": str(flows),
            "MEDIA_DIR": str(tmp_path / "media"),
            "MEDIA_MAX_BYTES": "50000",
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "TELEGRAM_WEBHOOK_SECRET": SECRET,
            "TELEGRAM_API_BASE_URL": tg.root,
            "TWILIO_ACCOUNT_SID": tw.account_sid,
            "TWILIO_AUTH_TOKEN": tw.auth_token,
            "TWILIO_SMS_FROM": SMS_FROM,
            "TWILIO_WHATSAPP_FROM": WA_FROM,
            "TWILIO_API_BASE_URL": tw.root,
            "TELEGRAM_RATE_PER_S": "0",
            "SMS_SEGMENTS_PER_S": "0",
            "WHATSAPP_RATE_PER_S": "0",
            "WEBCHAT_NEW_CLIENTS_PER_HOUR": "0",  # corpora start many web chats from one address
            **extra,
        }
    )


@contextlib.asynccontextmanager
async def running(
    settings: Settings,
    db: Database | None,
    clock: Clock,
    tg: FakeTelegram,
    tw: FakeTwilio,
    kind: type[Stack] = Stack,
) -> AsyncIterator[Stack]:
    """The bot as ``serve`` runs it (web app, inbox processing, senders) with its fakes; with
    ``db`` None as a process of its own (its own Database, migrated, closed at the end)."""
    kz = build(settings, clock=clock, db=db)
    if db is None:
        await kz.db.migrate()
    client = TestClient(TestServer(make_app(kz, background=True), host="127.0.0.1"))
    await client.start_server()
    try:
        yield kind(kz, client, tg, tw, clock)
    finally:
        await client.close()
        await kz.sender.stop()
        await kz.channels.close()
        if db is None:
            await kz.db.dispose()


@pytest_asyncio.fixture
async def stack(
    fakes: tuple[FakeTelegram, FakeTwilio], db: Database, database_url: str, tmp_path: Path, clock: Clock
) -> AsyncIterator[Stack]:
    tg, tw = fakes
    async with running(stack_settings(database_url, tmp_path, tg, tw), db, clock, tg, tw) as running_stack:
        yield running_stack


def texts(tg: FakeTelegram, chat: int) -> list[str]:
    return [m["text"] for m in tg.sent_messages(chat)]


# --- Telegram ----------------------------------------------------------------------------


async def test_telegram_full_dialogue_with_buttons(stack: Stack) -> None:
    chat = 4242
    assert await stack.tg_text(chat, "/start plakat-neukoelln") == 200
    first = stack.tg.sent_messages(chat)[0]
    assert first["text"].startswith("Kiezstimme sammelt")  # language_code "de" chose German
    keyboard = first["reply_markup"]["inline_keyboard"]
    assert [b["callback_data"] for row in keyboard for b in row] == ["yes", "no"]
    for data in ["yes", "idea", "housing"]:
        await stack.tg_press(chat, data)
    await stack.tg_text(chat, IDEA)
    for data in ["skip", "neukoelln", "yes", "send"]:
        await stack.tg_press(chat, data)
    sent = texts(stack.tg, chat)
    assert any("Ihre Nummer ist" in t for t in sent), sent
    assert len(stack.tg.calls_to("answerCallbackQuery")) == 7  # every press acknowledged
    removed = stack.tg.calls_to("editMessageReplyMarkup")
    assert len(removed) == 7 and all(not c.params.get("reply_markup") for c in removed)
    async with stack.kz.db.read() as conn:
        idea = (await conn.execute(select(Idea.channel, Idea.language, Idea.district, Idea.text))).one()
        source = (await conn.execute(select(Resident.source))).scalar_one()
    assert tuple(idea) == ("telegram", "de", "neukoelln", IDEA)
    assert source == "plakat-neukoelln"


@pytest.mark.parametrize("secret", [None, "wrong-secret", SECRET + "x", ""])
async def test_telegram_forged_or_missing_secret_changes_nothing(stack: Stack, secret: str | None) -> None:
    status = await stack.telegram(make_text_update(1, 77, "Hallo"), secret=secret)
    assert status == 403
    assert await stack.count(InboundMessage) == 0 and await stack.count(Resident) == 0
    assert stack.tg.sent_messages() == []


async def test_telegram_malformed_body_is_refused(stack: Stack) -> None:
    resp = await stack.http.post(
        "/webhooks/telegram", data=b"{nope", headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
    )
    assert resp.status == 400
    resp = await stack.http.post(
        "/webhooks/telegram", json={"no": "update"}, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
    )
    assert resp.status == 400
    assert await stack.count(InboundMessage) == 0


async def test_telegram_redelivery_has_no_second_effect(stack: Stack) -> None:
    update = make_text_update(555, 88, "Hallo")
    assert await stack.telegram(update) == 200
    assert await stack.telegram(update) == 200
    assert await stack.count(InboundMessage) == 1
    assert len(stack.tg.sent_messages(88)) == 1


async def test_telegram_stop_start_help_mid_dialogue(stack: Stack) -> None:
    chat = 99
    await stack.tg_text(chat, "Hallo")
    await stack.tg_press(chat, "yes")
    await stack.tg_press(chat, "idea")
    await stack.tg_text(chat, "/help")
    assert "Senatskanzlei Berlin" in texts(stack.tg, chat)[-2]  # who runs it, then the question again
    await stack.tg_text(chat, "STOPP")
    assert "keine Nachrichten mehr" in texts(stack.tg, chat)[-1]
    before = len(stack.tg.sent_messages(chat))
    await stack.tg_text(chat, "Hallo?")
    await stack.tg_press(chat, "mobility")
    assert len(stack.tg.sent_messages(chat)) == before  # nothing after STOP
    await stack.tg_text(chat, "/start")
    assert texts(stack.tg, chat)[-2].startswith("Willkommen zurück")
    assert "Zu welchem Thema" in texts(stack.tg, chat)[-1]  # where they were


async def test_blocked_bot_marks_the_resident_unreachable_once(stack: Stack) -> None:
    chat = 31
    stack.tg.block_chat(chat)
    await stack.tg_text(chat, "Hallo")
    async with stack.kz.db.read() as conn:
        unreachable = (await conn.execute(select(Resident.unreachable_at))).scalar_one()
        statuses = (await conn.execute(select(OutboundMessage.status, OutboundMessage.error))).all()
    assert unreachable is not None
    assert statuses and all(s.status == "failed" for s in statuses)
    assert "blocked" in statuses[0].error
    attempts = [c for c in stack.tg.calls_to("sendMessage") if c.params.get("chat_id") == chat]
    assert len(attempts) == 1  # no retry storm against a blocked chat


async def test_my_chat_member_kicked_marks_unreachable(stack: Stack) -> None:
    await stack.tg_text(32, "Hallo")
    assert await stack.telegram(make_my_chat_member_blocked(stack.next_id(), 32)) == 200
    async with stack.kz.db.read() as conn:
        assert (await conn.execute(select(Resident.unreachable_at))).scalar_one() is not None


async def test_telegram_voice_note_as_idea(stack: Stack, tmp_path: Path) -> None:
    chat = 55
    await stack.tg_text(chat, "Hallo")
    for data in ["yes", "idea", "mobility"]:
        await stack.tg_press(chat, data)
    stack.tg.add_file("voice-1", b"OggS" + b"\x00" * 2000, file_path="voice/file_1.oga")
    await stack.telegram(make_voice_update(stack.next_id(), chat, "voice-1", duration=7, file_size=2004))
    assert "Foto" in texts(stack.tg, chat)[-1]  # asked for an optional photo next
    await stack.tg_press(chat, "skip")
    for data in ["mitte", "no", "send"]:
        await stack.tg_press(chat, data)
    async with stack.kz.db.read() as conn:
        media = (await conn.execute(select(Idea.media))).scalar_one()
    assert media[0]["kind"] == "voice" and media[0]["size"] == 2004
    assert (tmp_path / "media" / media[0]["ref"]).read_bytes().startswith(b"OggS")


async def test_telegram_media_too_large_is_refused_without_download(stack: Stack) -> None:
    chat = 56
    await stack.tg_text(chat, "Hallo")
    for data in ["yes", "idea", "mobility"]:
        await stack.tg_press(chat, data)
    await stack.telegram(make_voice_update(stack.next_id(), chat, "voice-big", duration=900, file_size=10_000_000))
    assert "zu groß" in texts(stack.tg, chat)[-1]
    assert stack.tg.calls_to("getFile") == []


async def test_stickers_edits_and_poison_updates_never_block(stack: Stack) -> None:
    chat = 57
    await stack.tg_text(chat, "Hallo")
    before = len(stack.tg.sent_messages(chat))
    assert await stack.telegram(make_sticker_update(stack.next_id(), chat, "st-1")) == 200
    # answered (the engine's wording for a sticker; tests/test_odd_inputs.py checks what it is told),
    # not with the old "this kind of file", and the sticker was never downloaded
    assert len(stack.tg.sent_messages(chat)) > before
    assert not any("Art von Datei" in t for t in texts(stack.tg, chat)[before:])
    assert stack.tg.calls_to("getFile") == []
    count = len(stack.tg.sent_messages(chat))
    assert await stack.telegram(make_edited_message_update(stack.next_id(), chat, "edited", message_id=1)) == 200
    assert await stack.telegram({"update_id": stack.next_id(), "message": {"chat": "not a chat"}}) == 200
    group = make_text_update(stack.next_id(), -100123, "Hallo Gruppe")
    group["message"]["chat"] = {"id": -100123, "type": "group", "title": "Kiez"}
    assert await stack.telegram(group) == 200
    assert len(stack.tg.sent_messages(chat)) == count
    await stack.tg_press(chat, "yes")
    assert "Was möchten Sie tun?" in texts(stack.tg, chat)[-1]


async def test_telegram_outage_then_rate_limit_delays_but_delivers(stack: Stack) -> None:
    stack.tg.fail_next("sendMessage", 502, n=2)
    await stack.tg_text(58, "Hallo")
    assert stack.tg.sent_messages(58) == []
    for _ in range(3):
        stack.clock.advance(seconds=60)
        stack.kz.sender.wake()
        await stack.settle()
    assert len(stack.tg.sent_messages(58)) == 1
    stack.tg.fail_next("sendMessage", 429, retry_after=1)
    await stack.tg_press(58, "yes")
    async with stack.kz.db.read() as conn:
        due = (
            await conn.execute(select(OutboundMessage.next_attempt_at).where(OutboundMessage.status == "pending"))
        ).scalar_one()
    assert due == stack.clock.now + timedelta(seconds=1)  # retry_after honoured exactly
    stack.clock.advance(seconds=2)
    stack.kz.sender.wake()
    await stack.settle()
    assert "Was möchten Sie tun?" in texts(stack.tg, 58)[-1]


# --- SMS ----------------------------------------------------------------------------------


async def test_sms_full_dialogue_with_numbered_menus(stack: Stack) -> None:
    number = "+4915112345678"
    for body in ["Hallo", "1", "1", "2", "Mehr „Grün“ – und weniger Beton im Kiez", "3", "1", "1"]:
        assert await stack.sms(number, body) == 200
    sent = stack.tw.sent_to(number)
    assert sent[0]["From"] == SMS_FROM and sent[0]["StatusCallback"] == PUBLIC + "/webhooks/twilio/status"
    assert "\n1 Ja, einverstanden\n2 Nein" in sent[0]["Body"]
    assert any("Ihre Nummer ist" in m["Body"] for m in sent)
    summary = next(m["Body"] for m in sent if m["Body"].startswith("Ihre Idee"))
    assert '"Grün" - und' in summary and "„" not in summary  # kept in GSM-7
    async with stack.kz.db.read() as conn:
        rows = (
            await conn.execute(
                select(OutboundMessage.text, OutboundMessage.segments, OutboundMessage.status).where(
                    OutboundMessage.channel == "sms"
                )
            )
        ).all()
        idea = (await conn.execute(select(Idea.channel, Idea.text))).one()
    assert all(r.segments and r.status == "sent" for r in rows)
    consent = rows[0]
    assert consent.segments == 2  # the short SMS wording (INFO sends the full notice): 2 segments of 153
    assert tuple(idea) == ("sms", "Mehr „Grün“ – und weniger Beton im Kiez")  # the resident's words untouched


async def test_sms_in_arabic_counts_ucs2_segments(stack: Stack) -> None:
    await stack.sms("+4915112345679", "مرحبا")
    async with stack.kz.db.read() as conn:
        text, segments = (await conn.execute(select(OutboundMessage.text, OutboundMessage.segments))).one()
    assert segments == -(-len(text.encode("utf-16-le")) // 2 // 67)


@pytest.mark.parametrize("signature", [None, "", "bogus", "forged-for-another-url"])
async def test_sms_forged_signature_changes_nothing(stack: Stack, signature: str | None) -> None:
    params = inbound_sms_params("+4915112345670", SMS_FROM, "Hallo")
    if signature == "forged-for-another-url":
        signature = sign(stack.tw.auth_token, "http://127.0.0.1:8080/webhooks/twilio/sms", params)
    assert await stack.twilio("/webhooks/twilio/sms", params, signature=signature) == 403
    tampered = dict(params, Body="STOP")
    assert (
        await stack.twilio(
            "/webhooks/twilio/sms",
            tampered,
            signature=sign(stack.tw.auth_token, PUBLIC + "/webhooks/twilio/sms", params),
        )
        == 403
    )
    assert await stack.count(InboundMessage) == 0 and stack.tw.messages == []


async def test_sms_redelivery_and_bad_forms(stack: Stack) -> None:
    params = inbound_sms_params("+4915112345671", SMS_FROM, "Hallo")
    assert await stack.twilio("/webhooks/twilio/sms", params) == 200
    assert await stack.twilio("/webhooks/twilio/sms", params) == 200
    assert await stack.count(InboundMessage) == 1 and len(stack.tw.messages) == 1
    no_sid = {k: v for k, v in params.items() if k != "MessageSid"}
    assert await stack.twilio("/webhooks/twilio/sms", no_sid) == 400


async def test_sms_stop_in_german_then_silence(stack: Stack) -> None:
    number = "+4915112345672"
    await stack.sms(number, "Hallo")
    await stack.sms(number, "Stopp")
    assert "keine Nachrichten mehr" in stack.tw.sent_to(number)[-1]["Body"]
    await stack.sms(number, "1")
    assert len(stack.tw.sent_to(number)) == 2


async def test_status_callbacks_update_and_21610_stops(stack: Stack) -> None:
    number = "+4915112345673"
    await stack.sms(number, "Hallo")
    sid = stack.tw.sent_to(number)[0]
    async with stack.kz.db.read() as conn:
        provider_id = (await conn.execute(select(OutboundMessage.provider_id))).scalar_one()
    assert provider_id.startswith("SM")
    for status in ["sent", "delivered", "sent"]:  # out of order: never moves backwards
        assert await stack.twilio("/webhooks/twilio/status", status_callback_params(provider_id, status)) == 200
    async with stack.kz.db.read() as conn:
        assert (await conn.execute(select(OutboundMessage.status))).scalar_one() == "delivered"
    assert (
        await stack.twilio(
            "/webhooks/twilio/status", status_callback_params(provider_id, "failed", "21610"), signature="bogus"
        )
        == 403
    )
    assert (
        await stack.twilio("/webhooks/twilio/status", status_callback_params(provider_id, "undelivered", "21610"))
        == 200
    )
    async with stack.kz.db.read() as conn:
        status, error = (await conn.execute(select(OutboundMessage.status, OutboundMessage.error))).one()
        stopped = (await conn.execute(select(Resident.stopped_at))).scalar_one()
    assert status == "undelivered" and error.startswith("21610") and stopped is not None
    assert sid["To"] == number


async def test_twilio_refusal_21610_at_send_stops_the_resident(stack: Stack) -> None:
    number = "+4915112345674"
    stack.tw.fail_to(number, 400, 21610)
    await stack.sms(number, "Hallo")
    async with stack.kz.db.read() as conn:
        status, error = (await conn.execute(select(OutboundMessage.status, OutboundMessage.error))).one()
        stopped = (await conn.execute(select(Resident.stopped_at))).scalar_one()
    assert status == "failed" and "21610" in error and stopped is not None


# --- WhatsApp ---------------------------------------------------------------------------------


async def test_whatsapp_dialogue_with_a_voice_note(stack: Stack, tmp_path: Path) -> None:
    number = "+4917612345678"
    for body in ["Hallo", "1", "1", "1"]:
        await stack.whatsapp(number, body)
    url = stack.tw.add_media("ME1/voice.ogg", b"OggS" + b"\x01" * 3000, "audio/ogg")
    await stack.whatsapp(number, "", media=[(url, "audio/ogg")])
    for body in ["1", "3", "2", "1"]:  # photo: 1 skip; district: Pankow; updates: no; send
        await stack.whatsapp(number, body)
    sent = stack.tw.sent_to("whatsapp:" + number)
    assert sent[0]["From"] == WA_FROM and "Body" in sent[0]
    assert any("Ihre Nummer ist" in m.get("Body", "") for m in sent)
    async with stack.kz.db.read() as conn:
        idea = (await conn.execute(select(Idea.channel, Idea.media))).one()
    assert idea.channel == "whatsapp" and idea.media[0]["kind"] == "voice"
    assert (tmp_path / "media" / idea.media[0]["ref"]).stat().st_size == 3004


async def _enqueue(stack: Stack, address: str, language: str, text: str) -> None:
    key, sealed = stack.kz.db.keys.stored("whatsapp", address)  # as stored: keyed hash and sealed
    async with stack.kz.db.transaction() as conn:
        resident_id = (
            await conn.execute(select(ChannelIdentity.resident_id).where(ChannelIdentity.address == key))
        ).scalar_one()
        await conn.execute(
            insert(OutboundMessage).values(
                resident_id=resident_id,
                channel="whatsapp",
                address=key,
                address_enc=sealed,
                language=language,
                text=text,
                payload={"direction": "ltr", "choices": []},
                priority=1,
                status="pending",
                attempts=0,
                created_at=stack.clock.now,
            )
        )
    stack.kz.sender.wake()
    await stack.settle()


async def test_whatsapp_window_inside_outside_template_or_skip(stack: Stack) -> None:
    de, en = "+4917600000001", "+4917600000002"
    await stack.whatsapp(de, "Hallo")
    await stack.whatsapp(en, "Hello")
    await _enqueue(stack, de, "de", "Die Feedback-Phase beginnt heute.")  # inside the window: free text
    assert stack.tw.sent_to("whatsapp:" + de)[-1]["Body"] == "Die Feedback-Phase beginnt heute."
    stack.clock.advance(hours=25)
    await _enqueue(stack, de, "de", "Noch 2 Tage.")
    last = stack.tw.sent_to("whatsapp:" + de)[-1]
    assert last["ContentSid"] == "HX00000000000000000000000000000de0" and "Body" not in last
    assert '"Noch 2 Tage."' in last["ContentVariables"]
    before = len(stack.tw.sent_to("whatsapp:" + en))
    await _enqueue(stack, en, "en", "Two days left.")
    assert len(stack.tw.sent_to("whatsapp:" + en)) == before  # no template for English: not sent
    async with stack.kz.db.read() as conn:
        skipped = (
            await conn.execute(
                select(OutboundMessage.status, OutboundMessage.error).where(OutboundMessage.text == "Two days left.")
            )
        ).one()
    assert skipped.status == "skipped" and "24-hour window" in skipped.error


async def test_whatsapp_button_payload_is_a_choice(stack: Stack) -> None:
    number = "+4917600000003"
    await stack.whatsapp(number, "Hallo")
    await stack.whatsapp(number, "Ja", button_text="Ja", button_payload="yes")
    assert "Was möchten Sie tun?" in stack.tw.sent_to("whatsapp:" + number)[-1]["Body"]


async def test_twilio_outage_retries_until_delivered(stack: Stack) -> None:
    number = "+4915112345675"
    stack.tw.fail_next(500, 20500, n=2)
    await stack.sms(number, "Hallo")
    assert stack.tw.sent_to(number) == []
    for _ in range(3):
        stack.clock.advance(minutes=5)
        stack.kz.sender.wake()
        await stack.settle()
    assert len(stack.tw.sent_to(number)) == 1


async def test_set_webhook_command_registers_public_url_and_secret(fakes: tuple[FakeTelegram, FakeTwilio]) -> None:
    tg, _ = fakes
    env = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "TELEGRAM_API_BASE_URL": tg.root,
        "PUBLIC_URL": PUBLIC,
        "LOG_LEVEL": "WARNING",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "telegram",
        "set-webhook",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    assert tg.webhook["url"] == PUBLIC + "/webhooks/telegram"
    assert tg.webhook["secret_token"] == SECRET
    assert set(tg.webhook["allowed_updates"]) == {"message", "callback_query", "my_chat_member"}
    assert TOKEN not in out.decode() + err.decode()


# --- the generic webhook route ------------------------------------------------------------------


async def test_each_twilio_route_takes_only_its_own_messages(stack: Stack) -> None:
    sms_shaped = inbound_sms_params("+4915112345676", SMS_FROM, "Hallo")
    assert await stack.twilio("/webhooks/twilio/whatsapp", sms_shaped) == 400
    wa_shaped = inbound_whatsapp_params("4917600000009", "Ada", "Hallo", to=WA_FROM)
    assert await stack.twilio("/webhooks/twilio/sms", wa_shaped) == 400
    assert await stack.count(InboundMessage) == 0 and stack.tw.messages == []


async def test_undecodable_forms_are_refused_not_crashed(stack: Stack) -> None:
    from tests.test_fuzz import sign_raw

    body = b"Body=%FF%FE&From=%2B49151&MessageSid=SM1"
    for content_type, signed_status in [
        ("application/x-www-form-urlencoded", 400),
        ("application/x-www-form-urlencoded; charset=no-such-charset", 415),
    ]:
        # forged: refused by the signature before anything is decoded
        resp = await stack.http.post(
            "/webhooks/twilio/sms", data=body, headers={"Content-Type": content_type, "X-Twilio-Signature": "anything"}
        )
        assert resp.status == 403
        signature = sign_raw(stack.tw.auth_token, PUBLIC + "/webhooks/twilio/sms", body)
        resp = await stack.http.post(
            "/webhooks/twilio/sms", data=body, headers={"Content-Type": content_type, "X-Twilio-Signature": signature}
        )
        assert resp.status == signed_status
    resp = await stack.http.post(
        "/webhooks/twilio/sms", data=b"From=x", headers={"Content-Type": "text/plain", "X-Twilio-Signature": "x"}
    )
    assert resp.status == 415
    assert (await stack.http.post("/webhooks/nobody", data=b"")).status == 404
    assert await stack.count(InboundMessage) == 0


async def test_routes_of_channels_switched_off_are_404(kz: Kiezstimme, http: TestClient) -> None:
    for path in ["/webhooks/telegram", "/webhooks/twilio/sms", "/webhooks/twilio/whatsapp", "/webhooks/twilio/status"]:
        assert (await http.post(path, data=b"{}")).status == 404
