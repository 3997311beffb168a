"""The loopback fakes work with the real python-telegram-bot and twilio clients."""

from __future__ import annotations

import datetime as dtm
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from tests.fakes.telegram import (
    FakeTelegram,
    make_callback_update,
    make_edited_message_update,
    make_my_chat_member_blocked,
    make_photo_update,
    make_sticker_update,
    make_text_update,
    make_voice_update,
)
from tests.fakes.twilio import (
    FakeTwilio,
    count_segments,
    inbound_sms_params,
    inbound_whatsapp_params,
    sign,
    status_callback_params,
)

TOKEN = "123456:TEST-token_abc"


# ---------------------------------------------------------------- Telegram


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[telegram.Bot]:
    real = telegram.Bot(TOKEN, base_url=f"{tg.root}/bot", base_file_url=f"{tg.root}/file/bot")
    await real.initialize()
    yield real
    await real.shutdown()


async def test_initialize_calls_get_me(tg: FakeTelegram, bot: telegram.Bot) -> None:
    assert bot.username == "t_bot"
    assert tg.calls[0].method == "getMe"


async def test_send_message_with_inline_keyboard(tg: FakeTelegram, bot: telegram.Bot) -> None:
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Ja", callback_data="yes")]])
    first = await bot.send_message(chat_id=42, text="Hallo", reply_markup=markup)
    second = await bot.send_message(chat_id=43, text="Moin")

    assert first.text == "Hallo" and first.chat.id == 42
    assert second.message_id > first.message_id
    assert first.reply_markup == markup
    sent = tg.sent_messages(chat_id=42)
    assert len(sent) == 1
    assert sent[0]["chat_id"] == 42
    assert sent[0]["reply_markup"] == {"inline_keyboard": [[{"text": "Ja", "callback_data": "yes"}]]}
    assert [m["text"] for m in tg.sent_messages()] == ["Hallo", "Moin"]


async def test_other_methods(tg: FakeTelegram, bot: telegram.Bot) -> None:
    msg = await bot.send_message(chat_id=42, text="Frage?")
    edited = await bot.edit_message_text("Frage!", chat_id=42, message_id=msg.message_id)
    assert isinstance(edited, telegram.Message) and edited.text == "Frage!"
    cleared = await bot.edit_message_reply_markup(chat_id=42, message_id=msg.message_id)
    assert isinstance(cleared, telegram.Message) and cleared.message_id == msg.message_id
    assert await bot.answer_callback_query("cbq1", text="Danke")
    assert await bot.send_chat_action(chat_id=42, action="typing")
    assert await bot.set_webhook("https://example.org/tg", secret_token="s3cret")
    info = await bot.get_webhook_info()
    assert info.url == "https://example.org/tg"
    assert tg.webhook["secret_token"] == "s3cret"
    assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""
    methods = [c.method for c in tg.calls]
    assert "editMessageReplyMarkup" in methods and "answerCallbackQuery" in methods


async def test_scripted_429_raises_retry_after(
    tg: FakeTelegram, bot: telegram.Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    tg.fail_next("sendMessage", 429, retry_after=7)
    with pytest.raises(RetryAfter) as exc:
        await bot.send_message(chat_id=42, text="x")
    assert exc.value.retry_after == dtm.timedelta(seconds=7)
    assert tg.calls[-1].status == 429
    await bot.send_message(chat_id=42, text="x")  # only the next call failed
    assert len(tg.sent_messages(42)) == 1


async def test_scripted_other_errors(tg: FakeTelegram, bot: telegram.Bot) -> None:
    tg.fail_next("sendMessage", 500, n=2)
    tg.fail_next("sendMessage", 400, description="Bad Request: chat not found")
    for _ in range(2):
        with pytest.raises(NetworkError):
            await bot.send_message(chat_id=42, text="x")
    with pytest.raises(BadRequest, match="(?i)chat not found"):
        await bot.send_message(chat_id=42, text="x")
    tg.fail_next("sendMessage", 403)
    with pytest.raises(Forbidden):
        await bot.send_message(chat_id=42, text="x")
    assert (await bot.send_message(chat_id=42, text="ok")).text == "ok"


async def test_blocked_chat_is_forbidden(tg: FakeTelegram, bot: telegram.Bot) -> None:
    tg.block_chat(42)
    for _ in range(2):
        with pytest.raises(Forbidden, match="blocked by the user"):
            await bot.send_message(chat_id=42, text="x")
    await bot.send_message(chat_id=43, text="x")
    assert tg.sent_messages(42) == [] and len(tg.sent_messages(43)) == 1


async def test_rate_limit_counts_violations(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    async with FakeTelegram(per_chat_rate_limit_per_s=1) as fake:
        async with telegram.Bot(TOKEN, base_url=fake.base_url) as real:
            await real.send_message(chat_id=1, text="a")
            await real.send_message(chat_id=2, text="b")  # other chat: fine
            with pytest.raises(RetryAfter) as exc:
                await real.send_message(chat_id=1, text="c")
            assert exc.value.retry_after == dtm.timedelta(seconds=1)
            await real.send_chat_action(chat_id=1, action="typing")  # not limited
    assert fake.violations == 1


async def test_file_download(tg: FakeTelegram, bot: telegram.Bot) -> None:
    tg.add_file("VOICE1", b"OggS\x00voice", file_path="voice/file_7.oga")
    file = await bot.get_file("VOICE1")
    assert file.file_size == 10
    assert file.file_path == f"{tg.root}/file/bot{TOKEN}/voice/file_7.oga"
    assert bytes(await file.download_as_bytearray()) == b"OggS\x00voice"
    with pytest.raises(BadRequest):
        await bot.get_file("missing")


async def test_wrong_token_is_rejected(tg: FakeTelegram) -> None:
    other = telegram.Bot("999:wrong", base_url=tg.base_url)
    with pytest.raises(telegram.error.InvalidToken):
        await other.initialize()


async def test_json_bodies_are_accepted(tg: FakeTelegram) -> None:
    async with aiohttp.ClientSession() as session:
        url = f"{tg.root}/bot{TOKEN}/sendMessage"
        payload = {"chat_id": 5, "text": "json", "reply_markup": {"inline_keyboard": []}}
        async with session.post(url, json=payload) as response:
            body = await response.json()
    assert body["ok"] and body["result"]["text"] == "json"
    assert tg.sent_messages(5)[0]["reply_markup"] == {"inline_keyboard": []}


async def test_update_builders_parse(bot: telegram.Bot) -> None:
    text = Update.de_json(make_text_update(10, 42, "Hallo", language_code="tr"), bot)
    assert text.message.text == "Hallo" and text.effective_user.language_code == "tr"
    assert text.effective_chat.id == text.effective_user.id == 42
    assert text.effective_chat.type == "private"

    cmd = Update.de_json(make_text_update(11, 42, "/start abc"), bot)
    assert cmd.message.entities[0].type == "bot_command"

    cb = Update.de_json(make_callback_update(12, 42, "yes", message_id=5), bot)
    assert cb.callback_query.data == "yes" and cb.callback_query.message.message_id == 5
    assert cb.callback_query.message.from_user.is_bot

    voice = Update.de_json(make_voice_update(13, 42, "VOICE1", duration=4, file_size=9000), bot)
    assert voice.message.voice.file_id == "VOICE1" and voice.message.voice.mime_type == "audio/ogg"

    photo = Update.de_json(make_photo_update(14, 42, "PHOTO1", caption="Schlagloch"), bot)
    assert photo.message.photo[-1].file_id == "PHOTO1" and photo.message.caption == "Schlagloch"

    sticker = Update.de_json(make_sticker_update(15, 42, "STK1"), bot)
    assert sticker.message.sticker.file_id == "STK1"

    edited = Update.de_json(make_edited_message_update(16, 42, "neu", message_id=3), bot)
    assert edited.edited_message.text == "neu" and edited.edited_message.edit_date is not None

    blocked = Update.de_json(make_my_chat_member_blocked(17, 42), bot)
    member = blocked.my_chat_member
    assert member.new_chat_member.status == "kicked" and member.old_chat_member.status == "member"
    assert member.new_chat_member.user.id == bot.id


# ---------------------------------------------------------------- Twilio


@pytest.fixture
async def tw(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeTwilio]:
    monkeypatch.delenv("TWILIO_REGION", raising=False)
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    async with FakeTwilio() as fake:
        yield fake


@pytest.fixture
async def client(tw: FakeTwilio) -> AsyncIterator[Client]:
    http = AsyncTwilioHttpClient()
    real = Client(tw.account_sid, tw.auth_token, http_client=http)
    real.api.base_url = tw.root
    yield real
    await http.close()


async def test_twilio_send_sms(tw: FakeTwilio, client: Client) -> None:
    msg = await client.messages.create_async(
        to="+4917612345678",
        from_="+493012345678",
        body="Grüße aus dem Kiez",
        status_callback="https://example.org/twilio/status",
    )
    assert msg.sid.startswith("SM") and len(msg.sid) == 34
    assert msg.status == "queued" and msg.num_segments == "1"
    assert msg.to == "+4917612345678"
    assert tw.messages == [
        {
            "To": "+4917612345678",
            "From": "+493012345678",
            "Body": "Grüße aus dem Kiez",
            "StatusCallback": "https://example.org/twilio/status",
        }
    ]
    fetched = await client.messages(msg.sid).fetch_async()
    assert fetched.body == "Grüße aus dem Kiez"


async def test_twilio_whatsapp_template_and_media(tw: FakeTwilio, client: Client) -> None:
    msg = await client.messages.create_async(
        to="whatsapp:+4917612345678",
        messaging_service_sid="MG" + "a" * 32,
        content_sid="HX" + "b" * 32,
        content_variables=json.dumps({"1": "Ada"}),
    )
    assert msg.status == "accepted"
    assert tw.sent_to("whatsapp:+4917612345678")[0]["ContentVariables"] == '{"1": "Ada"}'
    await client.messages.create_async(
        to="+4917612345678",
        from_="+493012345678",
        media_url=["https://example.org/a.jpg", "https://example.org/b.jpg"],
    )
    assert tw.messages[-1]["MediaUrl"] == ["https://example.org/a.jpg", "https://example.org/b.jpg"]


async def test_twilio_scripted_failures(tw: FakeTwilio, client: Client) -> None:
    tw.fail_next(400, 21610)
    with pytest.raises(TwilioRestException) as exc:
        await client.messages.create_async(to="+4917612345678", from_="+4930", body="x")
    assert exc.value.code == 21610 and exc.value.status == 400

    tw.fail_next(429, 20429, retry_after=3)
    with pytest.raises(TwilioRestException) as exc:
        await client.messages.create_async(to="+4917612345678", from_="+4930", body="x")
    assert exc.value.code == 20429 and exc.value.status == 429
    assert tw.messages == []

    tw.fail_to("whatsapp:+4917600000000", 400, 63016)
    for _ in range(2):
        with pytest.raises(TwilioRestException) as exc:
            await client.messages.create_async(to="whatsapp:+4917600000000", from_="whatsapp:+4930", body="x")
        assert exc.value.code == 63016
    await client.messages.create_async(to="+4917612345678", from_="+4930", body="ok")
    assert len(tw.messages) == 1


async def test_twilio_retry_after_header_and_rate_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWILIO_REGION", raising=False)
    monkeypatch.delenv("TWILIO_EDGE", raising=False)
    async with FakeTwilio(rate_limit_per_s=1) as fake:
        url = f"{fake.root}/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
        data = {"To": "+491", "From": "+492", "Body": "x"}
        async with aiohttp.ClientSession(headers=fake.auth_headers) as session:
            async with session.post(url, data=data) as first:
                assert first.status == 201
            async with session.post(url, data=data) as second:
                assert second.status == 429
                assert second.headers["Retry-After"] == "1"
                assert (await second.json())["code"] == 20429
    assert fake.violations == 1


async def test_twilio_bad_credentials(tw: FakeTwilio) -> None:
    http = AsyncTwilioHttpClient()
    real = Client(tw.account_sid, "wrong-token", http_client=http)
    real.api.base_url = tw.root
    try:
        with pytest.raises(TwilioRestException) as exc:
            await real.messages.create_async(to="+491", from_="+492", body="x")
    finally:
        await http.close()
    assert exc.value.status == 401 and exc.value.code == 20003


async def test_twilio_media_requires_basic_auth(tw: FakeTwilio) -> None:
    url = tw.add_media("ME1/photo.jpg", b"\xff\xd8jpeg", "image/jpeg")
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as anonymous:
            assert anonymous.status == 401
        async with session.get(url, headers=tw.auth_headers) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "image/jpeg"
            assert await response.read() == b"\xff\xd8jpeg"


def test_webhook_params_and_signature() -> None:
    token = "tok"
    url = "https://kiez.example.org/twilio/sms"
    sms = inbound_sms_params("+4917612345678", "+493012345678", "Hallo", media=[("https://x/m0", "image/jpeg")])
    assert sms["NumMedia"] == "1" and sms["MediaContentType0"] == "image/jpeg"
    assert sms["MessageSid"].startswith("MM") and len(sms["MessageSid"]) == 34
    assert RequestValidator(token).validate(url, sms, sign(token, url, sms))
    assert not RequestValidator(token).validate(url + "?x=1", sms, sign(token, url, sms))

    wa = inbound_whatsapp_params("4917612345678", "Ada", "Ja", button_text="Ja", button_payload="yes")
    assert wa["From"] == "whatsapp:+4917612345678" and wa["WaId"] == "4917612345678"
    assert wa["ButtonPayload"] == "yes" and wa["ProfileName"] == "Ada"
    assert RequestValidator(token).validate(url, wa, sign(token, url, wa))

    status = status_callback_params("SM" + "0" * 32, "undelivered", error_code=30007)
    assert status["MessageStatus"] == "undelivered" and status["ErrorCode"] == "30007"
    assert "ErrorCode" not in status_callback_params("SM" + "0" * 32, "delivered")


def test_count_segments() -> None:
    assert count_segments("ä" * 160) == 1  # umlauts are GSM-7
    assert count_segments("a" * 161) == 2
    assert count_segments("€" * 80) == 1 and count_segments("€" * 81) == 2  # extension chars
    assert count_segments("ж" * 70) == 1 and count_segments("ж" * 71) == 2  # UCS-2
    assert count_segments("“quoted”") == 1


async def test_status_callback_is_signed(tw: FakeTwilio, client: Client) -> None:
    received: list[tuple[dict[str, str], str]] = []

    async def handler(request: aiohttp.web.Request) -> aiohttp.web.Response:
        received.append((dict(await request.post()), request.headers["X-Twilio-Signature"]))
        return aiohttp.web.Response(text="<Response/>", content_type="text/xml")

    app = aiohttp.web.Application()
    app.router.add_post("/status", handler)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    callback = f"http://127.0.0.1:{runner.addresses[0][1]}/status"
    try:
        msg = await client.messages.create_async(to="+491", from_="+492", body="x", status_callback=callback)
        assert await tw.send_status_callback(msg.sid, "delivered") == 200
    finally:
        await runner.cleanup()
    params, signature = received[0]
    assert params["MessageSid"] == msg.sid and params["MessageStatus"] == "delivered"
    assert RequestValidator(tw.auth_token).validate(callback, params, signature)
