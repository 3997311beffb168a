"""The web process over real HTTP on loopback: health, page, web chat API."""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.app import Kiezstimme
from bot.conversation import texts as M
from bot.delivery.outbox import Audience
from bot.participation import broadcasts
from bot.storage.models import Idea, InboundMessage

IDEA = "Mehr Bäume und Schatten auf dem Hermannplatz"


async def post(http: TestClient, text: str, client_id: str = "browser-0001", **extra: object) -> dict:
    resp = await http.post("/webchat/api/messages", json={"client_id": client_id, "text": text, **extra})
    assert resp.status == 200, await resp.text()
    return await resp.json()


def choice_values(body: dict) -> list[str]:
    return [c["value"] for m in body["messages"] for c in m["choices"]]


async def test_healthz(http: TestClient) -> None:
    resp = await http.get("/healthz")
    assert resp.status == 200 and await resp.json() == {"status": "ok"}


async def test_healthz_reports_a_dead_database(http: TestClient, kz: Kiezstimme) -> None:
    await kz.db.dispose()
    from bot.storage.db import Database

    kz.db.engine = Database("postgresql://nobody@127.0.0.1:1/none").engine
    resp = await http.get("/healthz")
    assert resp.status == 503


@pytest.mark.parametrize(
    ("lang", "answers", "thanks"),
    [
        ("de", ["1", "yes", "idea", "housing", IDEA, "neukoelln", "yes", "send"], "Ihre Nummer ist"),
        (
            "en",
            ["2", "yes", "idea", "mobility", "More night buses to the outer districts", "none", "no", "send"],
            "Your reference is",
        ),
    ],
)
async def test_whole_dialogue_with_buttons(
    http: TestClient, kz: Kiezstimme, lang: str, answers: list[str], thanks: str
) -> None:
    client = f"browser-{lang}-0001"
    body = await post(http, "START", client)
    assert choice_values(body) == ["de", "en", "tr", "ar", "fa", "uk", "ru", "pl", "vi", "de-x-ls"]
    assert [c["label"] for c in body["messages"][0]["choices"]][:4] == ["Deutsch", "English", "Türkçe", "العربية"]
    for answer in answers:
        body = await post(http, answer, client)
        assert body["messages"], answer
        assert all(m["lang"] == lang for m in body["messages"]), body  # never another language
    assert thanks in body["messages"][0]["text"]
    assert body["messages"][0]["choices"] == []
    assert "youth" in choice_values(body)  # who speaks, voluntary (tests/test_who_speaks.py)
    await post(http, "skip", client)
    body = await post(http, "skip", client)
    assert choice_values(body) == ["yes", "no"]  # feedback on the draft is offered next
    async with kz.db.read() as conn:
        idea = (await conn.execute(select(Idea.language, Idea.channel))).one()
    assert tuple(idea) == (lang, "webchat")


async def test_lang_hint_skips_the_language_question(http: TestClient) -> None:
    body = await post(http, "Hallo", lang="de")
    assert body["messages"][0]["text"].startswith("Kiezstimme sammelt")
    assert choice_values(body) == ["yes", "no"]


async def test_polling_returns_nothing_new(http: TestClient) -> None:
    await post(http, "...")
    resp = await http.get("/webchat/api/messages", params={"client_id": "browser-0001"})
    assert resp.status == 200 and (await resp.json())["messages"] == []


async def test_same_message_id_twice_is_processed_once(http: TestClient, kz: Kiezstimme) -> None:
    first = await post(http, "Hallo", message_id="msg-00000001")
    again = await post(http, "Hallo", message_id="msg-00000001")
    assert first["messages"] and again["messages"] == []
    async with kz.db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(InboundMessage))).scalar_one() == 1


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"[]", 400),
        (b'{"text": "hi"}', 400),
        (b'{"client_id": "short", "text": "hi"}', 400),
        (b'{"client_id": "browser-0001"}', 400),
        (b'{"client_id": "browser-0001", "text": 5}', 400),
        (json.dumps({"client_id": "browser-0001", "text": "x" * 10_001}).encode(), 400),
        (b'{"client_id": "../../etc/passwd", "text": "hi"}', 400),
        (b"\xff\xfe\x00", 400),
    ],
)
async def test_malformed_requests_get_a_4xx_and_store_nothing(
    http: TestClient, kz: Kiezstimme, body: bytes, status: int
) -> None:
    resp = await http.post("/webchat/api/messages", data=body, headers={"Content-Type": "application/json"})
    assert resp.status == status
    assert "error" in await resp.json()
    async with kz.db.read() as conn:
        assert (await conn.execute(select(func.count()).select_from(InboundMessage))).scalar_one() == 0


async def test_wrong_content_type_is_refused(http: TestClient) -> None:
    resp = await http.post("/webchat/api/messages", data="client_id=browser-0001&text=hi")
    assert resp.status == 415


@pytest.mark.parametrize("text", ["", "   ", "x" * 10_000, "😀😀😀", "<img src=x onerror=alert(1)>"])
async def test_odd_text_is_answered_not_dropped(http: TestClient, text: str) -> None:
    body = await post(http, text)
    assert body["messages"]
    assert choice_values(body)[:2] == ["de", "en"]  # asked again with the options


async def test_page_is_accessible_and_in_the_browser_language(http: TestClient) -> None:
    resp = await http.get("/", headers={"Accept-Language": "en-GB,en;q=0.9,de;q=0.5"})
    page = await resp.text()
    assert resp.status == 200
    assert '<html lang="en" dir="ltr">' in page
    assert '<label for="text" data-ui="input_label">Your message</label>' in page
    assert 'role="log" aria-live="polite"' in page
    resp = await http.get("/?lang=de")
    assert "Ihre Nachricht" in await resp.text()
    resp = await http.get("/", headers={"Accept-Language": "sw"})
    page = await resp.text()
    assert '<html lang="de" dir="ltr">' in page and 'lang: ""' in page  # no hint: the chat asks


def ui_of(kz: Kiezstimme, code: str) -> dict[str, str]:
    tr = kz.catalogs.get(code)
    return {
        "title": tr.gettext(M.WEB_TITLE),
        "intro": tr.gettext(M.WEB_INTRO),
        "start": tr.gettext(M.WEB_START),
        "input_label": tr.gettext(M.WEB_INPUT_LABEL),
        "send": tr.gettext(M.WEB_SEND),
        "language": tr.gettext(M.WEB_LANGUAGE),
        "error": tr.gettext(M.WEB_ERROR),
    }


async def poll(http: TestClient, client_id: str, **params: str) -> dict:
    resp = await http.get("/webchat/api/messages", params={"client_id": client_id, **params})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_no_page_language_before_the_resident_has_one(http: TestClient) -> None:
    body = await post(http, "START", "browser-new-0001", ui_lang="de")
    assert choice_values(body)[:2] == ["de", "en"]  # the language question
    assert "lang" not in body and "dir" not in body and "ui" not in body


async def test_page_texts_follow_the_residents_language(http: TestClient, kz: Kiezstimme) -> None:
    client = "browser-ar-0001"
    body = await post(http, "Hallo", client, lang="de", ui_lang="de")
    assert (body["lang"], body["dir"]) == ("de", "ltr") and "ui" not in body  # the page shows German already
    body = await post(http, "LANGUAGE", client, ui_lang="de")
    assert "ui" not in body and choice_values(body)[3] == "ar"
    body = await post(http, "ar", client, ui_lang="de")
    assert (body["lang"], body["dir"]) == ("ar", "rtl")
    assert body["ui"] == ui_of(kz, "ar")
    assert body["ui"]["input_label"] != ui_of(kz, "de")["input_label"]  # really translated
    # the page now shows Arabic: no texts again, but the language on every answer
    body = await post(http, "MENU", client, ui_lang="ar")
    assert (body["lang"], body["dir"]) == ("ar", "rtl") and "ui" not in body
    assert all(m["lang"] == "ar" and m["dir"] == "rtl" for m in body["messages"])
    # a page that was reloaded in German (its ?lang=) is told again
    assert (await poll(http, client, ui_lang="de"))["ui"] == ui_of(kz, "ar")
    assert "ui" not in await poll(http, client, ui_lang="ar")
    assert (await poll(http, client))["ui"] == ui_of(kz, "ar")  # a client that does not say
    # the English catalog leaves msgstr empty: its texts are the msgids
    await post(http, "LANGUAGE", client, ui_lang="ar")
    body = await post(http, "en", client, ui_lang="ar")
    assert (body["lang"], body["dir"], body["ui"]["send"]) == ("en", "ltr", "Send")


async def test_a_german_fallback_in_an_arabic_chat_keeps_its_own_direction(http: TestClient, kz: Kiezstimme) -> None:
    client = "browser-ar-0002"
    await post(http, "Hallo", client, lang="de")
    await post(http, "yes", client)  # consent: announcements go to residents who agreed
    await post(http, "LANGUAGE", client)
    assert (await post(http, "ar", client))["lang"] == "ar"
    text = "Heute Abend: Kiezversammlung im Rathaus Neukölln"
    key = broadcasts.broadcast_key({"de": text}, "de", Audience(opted_in_only=False))
    assert await broadcasts.send(kz, key, {"de": text}, "de", Audience(opted_in_only=False)) >= 1
    body = await poll(http, client, ui_lang="ar")
    assert [(m["text"], m["lang"], m["dir"]) for m in body["messages"]] == [(text, "de", "ltr")]
    assert (body["lang"], body["dir"]) == ("ar", "rtl") and "ui" not in body  # the page stays Arabic


async def test_ui_lang_must_be_a_short_string_or_is_ignored(http: TestClient, kz: Kiezstimme) -> None:
    body = await post(http, "Hallo", "browser-odd-0001", lang="de", ui_lang=["de"])
    assert body["ui"] == ui_of(kz, "de")  # not understood: the page is told its texts
    body = await post(http, "1", "browser-odd-0001", ui_lang="x" * 36)
    assert body["ui"] == ui_of(kz, "de")


async def test_the_page_is_told_when_the_resident_was_erased(http: TestClient) -> None:
    client = "browser-gone-0001"
    assert "erased" not in await post(http, "Hallo", client, lang="de")  # new: nobody was erased
    assert "erased" not in await post(http, "yes", client)
    assert "erased" not in await post(http, "DELETE", client)
    body = await post(http, "yes", client)
    assert body["erased"] is True and body["messages"] and "lang" not in body
    assert "erased" not in await post(http, "Hallo", client)  # a new resident now
    assert "erased" not in await poll(http, client)
