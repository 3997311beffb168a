"""Every channel's odd inputs, through the real webhook route on SQLite and PostgreSQL.

Recorded provider payloads (``tests/fakes``): Telegram service messages are acknowledged and
nothing is stored; locations, contacts, polls, stickers, videos … are stored with no text and
``extra["unsupported"]`` (a caption is kept as the text instead); the photos of an album carry
one ``extra["album"]``; WhatsApp stickers are not photos; an MMS with several photos keeps the
others in ``extra["more_media"]``; a Twilio form signed for one route is refused on another.

Most tests switch the inbox to ``web_only`` (store and acknowledge, as the web process of
``serve --web-only`` does) so the stored payload can be read before processing clears it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import smsutil
from sqlalchemy import select
from telegram.constants import MessageType

from bot.storage.models import Idea, InboundMessage, OutboundMessage, Resident
from channels import telegram as telegram_channel
from channels.sms_text import segments
from tests import test_channels
from tests.fakes.telegram import (
    SERVICE_MESSAGES,
    UNSUPPORTED_CONTENT,
    make_album_updates,
    make_message_update,
    make_photo_update,
    make_service_update,
    make_unsupported_update,
)
from tests.fakes.twilio import inbound_sms_params, inbound_whatsapp_location_params, inbound_whatsapp_params, sign
from tests.test_channels import PUBLIC, SMS_FROM, WA_FROM, Stack, texts

fakes, stack = test_channels.fakes, test_channels.stack  # the running bot and its provider fakes (fixtures)

ISOLATES = set("\u2066\u2067\u2068\u2069")


async def stored(stack: Stack) -> list[dict[str, Any]]:
    """The payloads in the inbox, in arrival order (with ``provider_id`` and ``status``)."""
    async with stack.kz.db.read() as conn:
        rows = (
            await conn.execute(
                select(InboundMessage.provider_id, InboundMessage.status, InboundMessage.payload).order_by(
                    InboundMessage.id
                )
            )
        ).all()
    return [{"provider_id": r.provider_id, "status": r.status, **(r.payload or {})} for r in rows]


def store_only(stack: Stack) -> Stack:
    stack.kz.inbox.web_only = True
    return stack


# --- Telegram: service messages ------------------------------------------------------------------


async def test_telegram_service_messages_are_acknowledged_and_store_nothing(stack: Stack) -> None:
    chat = 4100
    for field in SERVICE_MESSAGES:
        assert await stack.telegram(make_service_update(stack.next_id(), chat, field)) == 200, field
    assert await stack.count(InboundMessage) == 0 and await stack.count(Resident) == 0
    assert stack.tg.sent_messages() == []


async def test_telegram_service_messages_mid_dialogue_are_not_a_miss(stack: Stack) -> None:
    chat = 4101
    await stack.tg_text(chat, "Hallo")
    await stack.tg_press(chat, "yes")
    before = texts(stack.tg, chat)
    for field in ("pinned_message", "message_auto_delete_timer_changed", "write_access_allowed", "chat_background_set"):
        assert await stack.telegram(make_service_update(stack.next_id(), chat, field)) == 200
    assert texts(stack.tg, chat) == before  # silently: no "I cannot use this kind of file"
    assert await stack.count(InboundMessage) == 2  # "Hallo" and the pressed button only
    await stack.tg_press(chat, "idea")  # the dialogue goes on where it was
    assert len(texts(stack.tg, chat)) > len(before)


async def test_telegram_service_messages_in_groups_are_ignored_too(stack: Stack) -> None:
    for field in ("new_chat_members", "left_chat_member", "new_chat_title", "forum_topic_created"):
        update = make_service_update(stack.next_id(), -100555, field, chat_type="supergroup")
        assert await stack.telegram(update) == 200
    assert await stack.count(InboundMessage) == 0


def test_every_kind_of_telegram_message_is_classified() -> None:
    """Against the installed python-telegram-bot's list: each kind of message is either taken
    (text, voice, photo), something we cannot use (with its kind), or a service message."""
    attributes = {  # MessageType members that describe a message rather than being one
        "business_connection_id",
        "effect_id",
        "reply_to_story",
        "sender_boost_count",
        "sender_business_bot",
        "suggested_post_info",
    }
    kinds = {member.value for member in MessageType} - attributes
    taken = {"text", "voice", "photo"}
    unsupported, service = set(telegram_channel.UNSUPPORTED), telegram_channel.SERVICE
    assert not unsupported & service
    assert kinds - taken - unsupported - service == set()
    assert set(telegram_channel.UNSUPPORTED.values()) == {"location", "contact", "poll", "sticker", "other"}


# --- Telegram: what we cannot use -----------------------------------------------------------------


async def test_telegram_unsupported_content_is_stored_with_its_kind(stack: Stack) -> None:
    store_only(stack)
    chat = 4200
    sent = {}
    for field in UNSUPPORTED_CONTENT:
        update = make_unsupported_update(stack.next_id(), chat, field)
        sent[str(update["update_id"])] = field
        assert await stack.telegram(update) == 200, field
    rows = await stored(stack)
    assert len(rows) == len(UNSUPPORTED_CONTENT)
    for row in rows:
        field = sent[row["provider_id"]]
        assert row["text"] is None and row["media"] is None, field
        assert row["extra"] == {"unsupported": UNSUPPORTED_CONTENT[field][1]}, field
    kinds = {row["extra"]["unsupported"] for row in rows}
    assert kinds == {"location", "contact", "poll", "sticker", "other"}
    assert stack.tg.calls_to("getFile") == []  # nothing downloaded
    payloads = json.dumps([row for row in rows])
    assert "52.48" not in payloads and "+4915112345678" not in payloads  # no coordinates, no numbers kept


async def test_telegram_caption_of_unsupported_content_is_the_text(stack: Stack) -> None:
    store_only(stack)
    chat = 4201
    caption = "Die Kreuzung am Hermannplatz, jeden Morgen"
    await stack.telegram(make_unsupported_update(stack.next_id(), chat, "video", caption=caption))
    await stack.telegram(make_unsupported_update(stack.next_id(), chat, "document", caption="   "))
    video, document = await stored(stack)
    assert video["text"] == caption and video["media"] is None and video["extra"] == {}
    assert document["text"] is None and document["extra"] == {"unsupported": "other"}  # a blank caption is none


async def test_telegram_unknown_kind_of_message_is_other(stack: Stack) -> None:
    store_only(stack)
    await stack.telegram(make_message_update(stack.next_id(), 4202, {"hologram": {"file_id": "x1"}}))
    (row,) = await stored(stack)
    assert row["extra"] == {"unsupported": "other"} and row["text"] is None


async def test_telegram_voice_photo_and_text_are_as_before(stack: Stack) -> None:
    store_only(stack)
    chat = 4203
    await stack.tg_text(chat, "/start plakat-7")
    await stack.telegram(make_photo_update(stack.next_id(), chat, "ph-1", caption="Baumscheibe"))
    text, photo = await stored(stack)
    assert text["text"] == "/start" and text["extra"] == {"source": "plakat-7"}
    assert photo["text"] == "Baumscheibe" and photo["extra"] == {}  # a single photo has no album
    assert photo["media"]["kind"] == "photo" and photo["media"]["source"]["file_id"] == "ph-1"


async def test_telegram_unsupported_content_is_answered_and_processed(stack: Stack) -> None:
    chat = 4204
    await stack.tg_text(chat, "Hallo")
    for field in ("location", "poll", "contact"):
        before = len(texts(stack.tg, chat))
        assert await stack.telegram(make_unsupported_update(stack.next_id(), chat, field)) == 200
        assert len(texts(stack.tg, chat)) > before, field  # the engine answered (its wording)
    assert {row["status"] for row in await stored(stack)} == {"done"}


# --- Telegram: albums --------------------------------------------------------------------------------


async def test_telegram_album_of_three_photos_shares_one_album_id(stack: Stack) -> None:
    store_only(stack)
    chat = 4300
    first = stack.next_id()
    stack.update_id += 2
    updates = make_album_updates(first, chat, ["al-1", "al-2", "al-3"], "13787543398321212", caption="Drei Bilder")
    for update in updates:
        assert await stack.telegram(update) == 200
    rows = await stored(stack)
    assert [row["media"]["source"]["file_id"] for row in rows] == ["al-1", "al-2", "al-3"]
    assert all(row["media"]["kind"] == "photo" for row in rows)
    assert [row["extra"] for row in rows] == [{"album": "13787543398321212"}] * 3
    assert [row["text"] for row in rows] == ["Drei Bilder", None, None]


# --- WhatsApp ---------------------------------------------------------------------------------------


async def whatsapp(stack: Stack, params: dict[str, Any]) -> int:
    return await stack.twilio("/webhooks/twilio/whatsapp", params)


async def test_whatsapp_sticker_is_not_a_photo(stack: Stack, tmp_path: Path) -> None:
    store_only(stack)
    url = stack.tw.add_media("ME1/sticker.webp", b"RIFF\x00\x00\x00\x00WEBP", "image/webp")
    sticker = inbound_whatsapp_params(
        "4917600000100", "Ada", "", to=WA_FROM, media=[(url, "image/webp")], message_type="sticker"
    )
    photo_url = stack.tw.add_media("ME2/photo.webp", b"RIFF\x00\x00\x00\x00WEBP", "image/webp")
    photo = inbound_whatsapp_params("4917600000100", "Ada", "", to=WA_FROM, media=[(photo_url, "image/webp")])
    assert await whatsapp(stack, sticker) == 200
    assert await whatsapp(stack, photo) == 200
    sticker_row, photo_row = await stored(stack)
    assert sticker_row["media"] is None and sticker_row["text"] is None
    assert sticker_row["extra"] == {"unsupported": "sticker"}
    assert photo_row["media"]["kind"] == "photo"  # a webp image sent as an image is still a photo


async def test_whatsapp_sticker_is_never_downloaded(stack: Stack, tmp_path: Path) -> None:
    number = "4917600000101"
    await stack.whatsapp("+" + number, "Hallo")
    url = stack.tw.add_media("ME3/sticker.webp", b"RIFF\x00\x00\x00\x00WEBP", "image/webp")
    params = inbound_whatsapp_params(number, "Ada", "", to=WA_FROM, media=[(url, "image/webp")], message_type="sticker")
    before = len(stack.tw.sent_to("whatsapp:+" + number))
    assert await whatsapp(stack, params) == 200
    assert len(stack.tw.sent_to("whatsapp:+" + number)) > before  # answered
    assert stack.tw.media_requests == []
    assert not (tmp_path / "media").exists() or not any((tmp_path / "media").rglob("*.*"))


async def test_whatsapp_location_contact_video_document(stack: Stack) -> None:
    store_only(stack)
    wa = "4917600000102"
    location = inbound_whatsapp_location_params(
        wa, "Ada", 52.486861, 13.424578, address="Hermannplatz, 10967 Berlin", label="Hermannplatz", to=WA_FROM
    )
    vcard = stack.tw.add_media("ME4/bob.vcf", b"BEGIN:VCARD\r\nFN:Bob\r\nTEL:+4915112345678\r\nEND:VCARD", "text/vcard")
    contact = inbound_whatsapp_params(wa, "Ada", "", to=WA_FROM, media=[(vcard, "text/vcard")], message_type="contacts")
    video_url = stack.tw.add_media("ME5/v.mp4", b"\x00\x00\x00\x18ftypmp42", "video/mp4")
    video = inbound_whatsapp_params(wa, "Ada", "", to=WA_FROM, media=[(video_url, "video/mp4")])
    captioned = inbound_whatsapp_params(
        wa, "Ada", "Falschparker, jeden Tag", to=WA_FROM, media=[(video_url, "video/mp4")]
    )
    pdf = stack.tw.add_media("ME6/plan.pdf", b"%PDF-1.7", "application/pdf")
    document = inbound_whatsapp_params(wa, "Ada", "", to=WA_FROM, media=[(pdf, "application/pdf")])
    for params in (location, contact, video, captioned, document):
        assert await whatsapp(stack, params) == 200
    rows = await stored(stack)
    assert [row["extra"] for row in rows] == [
        {"unsupported": "location"},
        {"unsupported": "contact"},
        {"unsupported": "other"},
        {},
        {"unsupported": "other"},
    ]
    assert [row["text"] for row in rows] == [None, None, None, "Falschparker, jeden Tag", None]
    assert all(row["media"] is None for row in rows)
    payloads = json.dumps(rows)
    assert "52.48" not in payloads and "13.42" not in payloads and "Hermannplatz" not in payloads
    assert stack.tw.media_requests == []


async def test_whatsapp_image_audio_and_buttons_as_before(stack: Stack) -> None:
    store_only(stack)
    wa = "4917600000103"
    jpg = stack.tw.add_media("ME7/p.jpg", b"\xff\xd8\xff", "image/jpeg")
    ogg = stack.tw.add_media("ME8/v.ogg", b"OggS", "audio/ogg")
    await whatsapp(stack, inbound_whatsapp_params(wa, "Ada", "Unser Hof", to=WA_FROM, media=[(jpg, "image/jpeg")]))
    await whatsapp(stack, inbound_whatsapp_params(wa, "Ada", "", to=WA_FROM, media=[(ogg, "audio/ogg")]))
    await whatsapp(stack, inbound_whatsapp_params(wa, "Ada", "Ja", to=WA_FROM, button_text="Ja", button_payload="yes"))
    photo, voice, button = await stored(stack)
    assert photo["text"] == "Unser Hof" and photo["media"]["kind"] == "photo" and photo["extra"] == {}
    assert photo["media"]["source"] == {"url": jpg, "mime": "image/jpeg"}
    assert voice["media"]["kind"] == "voice" and voice["extra"] == {}
    assert button["choice"] == "yes" and button["text"] is None and button["extra"] == {}


# --- SMS / MMS ---------------------------------------------------------------------------------------


async def test_mms_with_three_photos_is_one_album(stack: Stack) -> None:
    store_only(stack)
    urls = [stack.tw.add_media(f"MM1/{i}.jpg", b"\xff\xd8\xff" + bytes([i]), "image/jpeg") for i in range(3)]
    params = inbound_sms_params(
        "+4915112340001",
        SMS_FROM,
        "Der Spielplatz",
        media=[(urls[0], "image/jpeg"), (urls[1], "image/png"), (urls[2], "image/jpeg")],
    )
    assert await stack.twilio("/webhooks/twilio/sms", params) == 200
    (row,) = await stored(stack)
    assert row["text"] == "Der Spielplatz"
    assert row["media"]["kind"] == "photo" and row["media"]["source"] == {"url": urls[0], "mime": "image/jpeg"}
    assert row["extra"] == {
        "album": params["MessageSid"],
        "more_media": [{"url": urls[1], "mime": "image/png"}, {"url": urls[2], "mime": "image/jpeg"}],
    }


async def test_mms_photo_after_a_vcard_and_mms_of_things_we_cannot_use(stack: Stack) -> None:
    store_only(stack)
    number = "+4915112340002"
    vcf = stack.tw.add_media("MM2/a.vcf", b"BEGIN:VCARD", "text/x-vcard")
    jpg = stack.tw.add_media("MM2/b.jpg", b"\xff\xd8\xff", "image/jpeg")
    mp4 = stack.tw.add_media("MM2/c.mp4", b"\x00", "video/3gpp")
    tif = stack.tw.add_media("MM2/d.tif", b"II*\x00", "image/tiff")
    forms = [
        inbound_sms_params(number, SMS_FROM, "", media=[(vcf, "text/x-vcard"), (jpg, "image/jpeg")]),
        inbound_sms_params(number, SMS_FROM, "", media=[(vcf, "text/x-vcard")]),
        inbound_sms_params(number, SMS_FROM, "", media=[(mp4, "video/3gpp")]),
        inbound_sms_params(number, SMS_FROM, "Stau hier", media=[(mp4, "video/3gpp")]),
        inbound_sms_params(number, SMS_FROM, "", media=[(tif, "image/tiff")]),
        inbound_sms_params(number, SMS_FROM, "Nur Text"),
    ]
    for params in forms:
        assert await stack.twilio("/webhooks/twilio/sms", params) == 200
    photo, contact, video, captioned, tiff, text = await stored(stack)
    assert photo["media"]["source"]["url"] == jpg and photo["extra"] == {"album": forms[0]["MessageSid"]}
    assert contact["extra"] == {"unsupported": "contact"} and contact["text"] is None
    assert video["extra"] == {"unsupported": "other"} and video["media"] is None
    assert captioned["text"] == "Stau hier" and captioned["extra"] == {}
    # an image we cannot open stays what it was: a refused file, for the engine's file answer
    assert tiff["media"]["kind"] == "unsupported" and tiff["media"]["source"] is None and tiff["extra"] == {}
    assert text["text"] == "Nur Text" and text["media"] is None and text["extra"] == {}


async def test_arabic_sms_carries_marks_not_isolates(stack: Stack) -> None:
    number = "+4915112340003"
    await stack.sms(number, "مرحبا")
    await stack.sms(number, "1")
    sent = stack.tw.sent_to(number)
    assert sent
    for message in sent:
        assert not ISOLATES & set(message["Body"])
    async with stack.kz.db.read() as conn:
        rows = (await conn.execute(select(OutboundMessage.text, OutboundMessage.segments))).all()
    for text, counted in rows:
        assert counted == segments(text)[1] == len(smsutil.split(text).parts) <= 6


# --- a form signed for one route is refused on another ----------------------------------------------------


async def post_signed_for(stack: Stack, signed_path: str, posted_path: str, params: dict[str, Any]) -> int:
    signature = sign(stack.tw.auth_token, PUBLIC + signed_path, params)
    return await stack.twilio(posted_path, params, signature=signature)


@pytest.mark.parametrize(
    ("signed_for", "posted_to", "shape"),
    [
        ("/webhooks/twilio/sms", "/webhooks/twilio/whatsapp", "sms"),  # SMS-shaped, replayed on WhatsApp
        ("/webhooks/twilio/sms", "/webhooks/twilio/whatsapp", "whatsapp"),  # WhatsApp-shaped, signed for SMS
        ("/webhooks/twilio/whatsapp", "/webhooks/twilio/sms", "whatsapp"),
        ("/webhooks/twilio/whatsapp", "/webhooks/twilio/sms", "sms"),
        ("/webhooks/twilio/status", "/webhooks/twilio/sms", "sms"),
        ("/webhooks/twilio/sms", "/webhooks/twilio/status", "sms"),
        ("/webhooks/twilio/sms", "/webhooks/twilio/sms?replay=1", "sms"),  # the query is signed too
    ],
)
async def test_a_form_signed_for_one_route_is_refused_on_another(
    stack: Stack, signed_for: str, posted_to: str, shape: str
) -> None:
    if shape == "sms":
        params = inbound_sms_params("+4915112340010", SMS_FROM, "STOP")
    else:
        params = inbound_whatsapp_params("4917600000110", "Ada", "STOP", to=WA_FROM)
    assert await post_signed_for(stack, signed_for, posted_to, params) == 403
    assert await stack.count(InboundMessage) == 0 and await stack.count(Resident) == 0
    assert stack.tw.messages == []


async def test_each_route_takes_only_its_own_shape_even_when_signed_for_it(stack: Stack) -> None:
    sms_to_whatsapp_number = inbound_sms_params(
        "+4915112340011", WA_FROM, "Hallo"
    )  # From a phone, To a WhatsApp sender
    assert await stack.twilio("/webhooks/twilio/sms", sms_to_whatsapp_number) == 400
    assert await stack.twilio("/webhooks/twilio/whatsapp", sms_to_whatsapp_number) == 400
    assert (
        await stack.twilio("/webhooks/twilio/whatsapp", inbound_sms_params("+4915112340012", SMS_FROM, "Hallo")) == 400
    )
    wa = inbound_whatsapp_params("4917600000111", "Ada", "Hallo", to=WA_FROM)
    assert await stack.twilio("/webhooks/twilio/sms", wa) == 400
    assert await stack.count(InboundMessage) == 0 and stack.tw.messages == []
    assert await stack.twilio("/webhooks/twilio/whatsapp", wa) == 200  # its own route takes it
    assert await stack.count(InboundMessage) == 1


async def test_mms_with_three_photos_at_the_idea_question_keeps_all_three(stack: Stack, tmp_path: Path) -> None:
    number = "+4915112340077"
    for body in ["Hallo", "ja", "Idee", "Spielplatz"]:
        assert await stack.sms(number, body) == 200
    urls = [stack.tw.add_media(f"MM7/{i}.jpg", b"\xff\xd8\xff" + bytes([i]) * 40, "image/jpeg") for i in range(3)]
    params = inbound_sms_params(
        number, SMS_FROM, "Ein Sonnensegel über dem Sandkasten", media=[(u, "image/jpeg") for u in urls]
    )
    assert await stack.twilio("/webhooks/twilio/sms", params) == 200
    for body in ["Wedding", "nein", "1"]:
        assert await stack.sms(number, body) == 200
    await stack.settle()
    async with stack.kz.db.read() as conn:
        idea = (await conn.execute(select(Idea.text, Idea.media, Idea.district))).one()
    assert idea.text == "Ein Sonnensegel über dem Sandkasten" and idea.district == "mitte"
    assert len(idea.media) == 3
    media_dir = Path(stack.kz.settings.media_dir)
    assert sorted((media_dir / m["ref"]).read_bytes()[3] for m in idea.media) == [0, 1, 2]
    kept = repr(await stored(stack))
    assert not any(url in kept for url in urls)  # no provider media address kept
