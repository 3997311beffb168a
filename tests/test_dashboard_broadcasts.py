"""The dashboard's broadcasts over HTTP on SQLite and PostgreSQL: compose, preview (numbers,
languages without a text — Leichte Sprache included —, SMS segments and cost), confirm,
progress; residents of two languages get it exactly once each through the fake Telegram and
Twilio servers with the real sender running; double submits, cancelling, scheduled sends,
roles and CSRF; the CLI's broadcasts in the same table. And in Chromium: an organiser does it
all in the German UI, with axe-core finding nothing on any of the pages."""

from __future__ import annotations

import argparse
import contextlib
import html
import os
import re
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select, update

from bot.app import Kiezstimme, build
from bot.config import load_settings
from bot.participation.broadcasts import queue_due
from bot.participation.scheduler import BROADCASTS_JOB, ReminderClock
from bot.storage.db import Database
from bot.storage.models import AuditEntry, Broadcast, OutboundMessage, Resident
from bot.storage.seed import seed_residents
from bot.web.app import make_app
from tests.conftest import OPEN_FLOWS, TEST_DATA_KEY, Clock, make_settings
from tests.dashboard_helpers import add_accounts, as_role, axe_violations, browser_sign_in, csrf
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import FakeTwilio
from tests.test_channels import wait_until

TOKEN = "123456:TEST-token_abcdefghijklmnopqrstuv"
GERMAN = "Am Samstag ist Kiezfest auf dem Hermannplatz. <b>Kommen Sie!</b>"
ARABIC = "يوم السبت مهرجان الحي في ساحة هيرمان. تعالوا!"
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def hidden_fields(page_html: str) -> list[tuple[str, str]]:
    """The confirmation form's fields, as the browser would send them back."""
    form = page_html[page_html.index('class="confirm"') :]
    return [(name, html.unescape(value)) for name, value in _HIDDEN.findall(form)]


async def count(db: Database, model: type, *where: Any) -> int:
    async with db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def post(session: aiohttp.ClientSession, path: str, data: Any) -> tuple[int, str, str]:
    async with session.post(path, data=data, allow_redirects=False) as resp:
        return resp.status, await resp.text(), resp.headers.get("Location", "")


# --- the whole way, through the fakes ------------------------------------------------------------


@dataclass
class Stack:
    kz: Kiezstimme
    http: TestClient
    tg: FakeTelegram
    tw: FakeTwilio


@contextlib.asynccontextmanager
async def running_bot(
    db: Database, database_url: str, tmp_path: Path, clock: Clock, *, background: bool
) -> AsyncIterator[Stack]:
    """The bot with Telegram, SMS and WhatsApp switched on against the fakes (with
    ``background``, its sender running as in ``serve``); residents: four on Telegram (de, ar,
    de, ar), two by SMS (de, ar), one in Leichte Sprache on Telegram, two on WhatsApp (ar, de)
    outside the 24 h window."""
    os.environ.pop("TWILIO_REGION", None)
    os.environ.pop("TWILIO_EDGE", None)
    async with FakeTelegram(token=TOKEN) as tg, FakeTwilio() as tw:
        flows = tmp_path / "flows"
        shutil.copytree(OPEN_FLOWS, flows)
        (flows / "whatsapp.yaml").write_text("templates:\n  de: HX00000000000000000000000000000de0\n", encoding="utf-8")
        settings = load_settings(
            {
                "DATABASE_URL": database_url,
                "DATA_KEY": TEST_DATA_KEY,
                "FLOWS_DIR": str(flows),
                "MEDIA_DIR": str(tmp_path / "media"),
                "TELEGRAM_BOT_TOKEN": TOKEN,
                "TELEGRAM_WEBHOOK_SECRET": "secret_0123456789",
                "TELEGRAM_API_BASE_URL": tg.root,
                "TWILIO_ACCOUNT_SID": tw.account_sid,
                "TWILIO_AUTH_TOKEN": tw.auth_token,
                "TWILIO_SMS_FROM": "+4930901820",
                "TWILIO_WHATSAPP_FROM": "whatsapp:+4930901821",
                "WHATSAPP_RATE_PER_S": "0",
                "TWILIO_API_BASE_URL": tw.root,
                "TELEGRAM_RATE_PER_S": "0",
                "SMS_SEGMENTS_PER_S": "0",
                "SMS_PRICE_PER_SEGMENT": "0.08",
            }
        )
        kz = build(settings, clock=clock, db=db)
        await seed_residents(db, 4, languages=("de", "ar"), channels=("telegram",), now=clock.now)
        await seed_residents(db, 2, languages=("de", "ar"), channels=("sms",), start=4, now=clock.now)
        await seed_residents(db, 1, languages=("de-x-ls",), channels=("telegram",), start=6, now=clock.now)
        # on WhatsApp, last heard from two days ago: outside the 24 h window (a template only in German)
        await seed_residents(
            db, 2, languages=("de", "ar"), channels=("whatsapp",), start=7, now=clock.now - timedelta(days=2)
        )
        await add_accounts(kz)
        client = TestClient(TestServer(make_app(kz, background=background), host="127.0.0.1"))
        await client.start_server()
        try:
            yield Stack(kz, client, tg, tw)
        finally:
            await client.close()
            await kz.sender.stop()
            await kz.channels.close()


@pytest_asyncio.fixture
async def stack(db: Database, database_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Stack]:
    async with running_bot(db, database_url, tmp_path, clock, background=True) as running:
        yield running


@pytest_asyncio.fixture
async def idle_stack(db: Database, database_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Stack]:
    """The same, its sender not started: broadcasts wait in the outbox until the test starts it."""
    async with running_bot(db, database_url, tmp_path, clock, background=False) as waiting:
        yield waiting


async def test_compose_preview_confirm_and_everyone_gets_it_once_in_their_language(stack: Stack) -> None:
    kz, tg, tw = stack.kz, stack.tg, stack.tw
    async with as_role(stack.http, kz, "organiser") as session:
        async with session.get("/admin/broadcasts/new?lang=en") as resp:
            compose = await resp.text()
        assert resp.status == 200
        for code in ("de", "ar", "de-x-ls", "tr", "uk"):
            assert f'<textarea id="text-{code}" name="text-{code}" lang="{code}"' in compose
        assert 'name="text-ar" lang="ar" dir="rtl"' in compose and 'name="text-de" lang="de" dir="ltr"' in compose
        assert "Leichte Sprache</span>" in compose
        # who would miss out is visible while writing: residents per language
        assert '<p id="reach-de-x-ls" class="reach has-residents">1 residents who opted in speak it' in compose
        assert '<p id="reach-de" class="reach has-residents">4 residents who opted in speak it' in compose
        assert '<p id="reach-tr" class="reach">Nobody who opted in speaks it yet.' in compose
        for name in ("language", "channel", "district", "topic"):  # source: once residents came through one
            assert f'name="{name}"' in compose
        token = await csrf(session, "/admin/broadcasts/new")
        form = {"csrf_token": token, "text-de": GERMAN, "text-ar": ARABIC, "send_at": "", "fallback": ""}
        status, preview, _ = await post(session, "/admin/broadcasts?lang=en", form)
        assert status == 200
        # 8 residents (4 Telegram, 2 SMS, 2 WhatsApp) in 2 languages; 2 SMS of one segment each at 0.08
        assert "goes to 8 residents in 2 languages: about 2 SMS segments, about €0.16." in preview
        # WhatsApp outside the window: the German template reaches them, Arabic has none
        german = '<bdi lang="de">Deutsch</bdi></strong>:\n1 residents wrote last more than 24 hours ago; they get the'
        arabic = '<bdi lang="ar">العربية</bdi></strong>:\n<span class="error">1 residents wrote last more than 24 hours'
        assert german in preview and arabic in preview
        # Leichte Sprache has a resident and no text: flagged, and not replaced by German
        flags = preview[preview.index("Languages without a text") : preview.index("Audience per channel")]
        assert "Leichte Sprache" in flags and "1 residents get nothing" in flags
        assert "is not standard German" in flags
        # each channel's rendering: the organiser's text escaped, SMS with parts, segments and alphabet
        assert "&lt;b&gt;Kommen Sie!&lt;/b&gt;" in preview and "<b>Kommen" not in preview
        assert "Part 1 of 1: 1 SMS segments, GSM-7" in preview and "Part 1 of 1: 1 SMS segments, UCS-2" in preview
        assert 'lang="ar" dir="rtl">' + ARABIC in preview
        fields = hidden_fields(preview)
        assert ("text-de", GERMAN) in fields and ("text-ar", ARABIC) in fields
        assert '<button type="submit" name="confirm" value="yes"' in preview
        assert await count(kz.db, OutboundMessage) == 0  # a preview queues nothing

        status, _, location = await post(session, "/admin/broadcasts?lang=en", [*fields, ("confirm", "yes")])
        assert status == 303 and re.fullmatch(r"/admin/broadcasts/\d+\?lang=en", location), location
        again, _, location2 = await post(session, "/admin/broadcasts?lang=en", [*fields, ("confirm", "yes")])
        assert again == 303 and location2 == location  # a double submit is the same broadcast
        assert await count(kz.db, Broadcast) == 1

        await wait_until(lambda: _settled(tg, tw), timeout=20)
        progress_path = location.split("?")[0] + "?lang=en"

        async def all_sent() -> bool:
            async with session.get(progress_path) as resp:
                return 'data-stage="sent">7<' in await resp.text()

        await wait_until(all_sent, timeout=20)
        async with session.get(progress_path) as resp:
            progress = await resp.text()
        # the Arabic WhatsApp resident, outside the window without a template, is skipped
        assert 'data-stage="queued">0<' in progress and 'data-stage="failed">1<' in progress
        assert "finished" in progress and "Cancel the broadcast" not in progress

    # exactly once each, in their own language; Leichte Sprache got no German instead
    by_chat = {}
    for message in tg.sent_messages():
        by_chat.setdefault(message["chat_id"], []).append(message["text"])
    assert by_chat == {1_000_000: [GERMAN], 1_000_001: [ARABIC], 1_000_002: [GERMAN], 1_000_003: [ARABIC]}
    sms = sorted((m["To"], m["Body"]) for m in tw.messages if not m["To"].startswith("whatsapp:"))
    assert len(sms) == 2 and [body for _, body in sms] in ([GERMAN, ARABIC], [ARABIC, GERMAN])
    assert {to.lstrip("+")[-7:] for to, _ in sms} == {"1000004", "1000005"}
    whatsapp = [m for m in tw.messages if m["To"].startswith("whatsapp:")]
    assert len(whatsapp) == 1 and whatsapp[0]["To"].endswith("1000008") and GERMAN in whatsapp[0]["ContentVariables"]
    # recorded and audited under the organiser's name
    async with kz.db.read() as conn:
        row = (await conn.execute(select(Broadcast.created_by, Broadcast.total, Broadcast.queued_at))).one()
        actions = (await conn.execute(select(AuditEntry.actor, AuditEntry.action))).all()
    assert row.created_by == "organiser@example.org" and row.total == 8 and row.queued_at is not None
    assert ("organiser@example.org", "broadcast.create") in [tuple(a) for a in actions]


async def _settled(tg: FakeTelegram, tw: FakeTwilio) -> bool:
    return len(tg.sent_messages()) >= 4 and len(tw.messages) >= 3


# --- cancelling, scheduling, roles and CSRF (web chat residents: their messages wait) ------------


async def _confirm(session: aiohttp.ClientSession, **extra: str) -> tuple[int, str]:
    token = await csrf(session, "/admin/broadcasts/new")
    form = {"csrf_token": token, "text-de": "Heute Abend: Kiezversammlung.", "text-en": "Tonight: a meeting."}
    form |= extra
    status, preview, _ = await post(session, "/admin/broadcasts?lang=en", form)
    assert status == 200, preview
    status, body, location = await post(
        session, "/admin/broadcasts?lang=en", [*hidden_fields(preview), ("confirm", "yes")]
    )
    assert status == 303, body
    return int(location.split("/")[-1].split("?")[0]), location


async def _waiting(kz: Kiezstimme) -> int:
    return await count(kz.db, OutboundMessage, OutboundMessage.status == "pending")


async def test_cancel_stops_the_messages_that_wait(kz: Kiezstimme, http: TestClient, clock: Clock) -> None:
    await seed_residents(kz.db, 4, languages=("de", "en"), channels=("webchat",), now=clock.now)
    await add_accounts(kz)
    async with as_role(http, kz, "organiser") as session:
        broadcast_id, location = await _confirm(session)
        assert await _waiting(kz) == 4
        async with session.get(location) as resp:
            page_html = await resp.text()
        assert "Cancel the broadcast" in page_html and 'data-stage="in web chat">4<' in page_html
        async with session.get(location, headers={"Accept": "application/json"}) as resp:
            numbers = await resp.json()  # what the page's script reads
        assert numbers["stages"] == {"in web chat": 4} and numbers["channels"] == {"webchat": {"in web chat": 4}}
        # one resident opens the web chat before the organiser cancels: theirs is delivered
        first = await kz.service.take_pending("webchat", "1000000")
        assert [m.text for m in first] == ["Heute Abend: Kiezversammlung."]
        token = await csrf(session, location)
        # a moderator may not cancel
        async with as_role(http, kz, "moderator") as moderator:
            mod_token = await csrf(moderator, "/admin/")
            status, _, _ = await post(moderator, f"/admin/broadcasts/{broadcast_id}/cancel", {"csrf_token": mod_token})
            assert status == 403 and await _waiting(kz) == 3
        status, _, _ = await post(session, f"/admin/broadcasts/{broadcast_id}/cancel", {})
        assert status == 403 and await _waiting(kz) == 3  # no CSRF token: nothing changed
        status, _, back = await post(session, f"/admin/broadcasts/{broadcast_id}/cancel?lang=en", {"csrf_token": token})
        assert status == 303 and back.startswith(f"/admin/broadcasts/{broadcast_id}")
        assert await _waiting(kz) == 0
        assert await count(kz.db, OutboundMessage, OutboundMessage.status == "cancelled") == 3
        assert await kz.service.take_pending("webchat", "1000001") == []  # never handed over
        # a message a sender had in hand at that moment, retried later, is stopped by the next check
        async with kz.db.transaction() as conn:
            retried = (
                select(func.min(OutboundMessage.id)).where(OutboundMessage.status == "cancelled").scalar_subquery()
            )
            await conn.execute(update(OutboundMessage).where(OutboundMessage.id == retried).values(status="pending"))
        assert await _waiting(kz) == 1
        await queue_due(kz)
        assert await _waiting(kz) == 0
        async with session.get(back) as resp:
            page_html = await resp.text()
        assert "cancelled at" in page_html and 'data-stage="cancelled">3<' in page_html
        assert 'data-stage="delivered">1<' in page_html and "Cancel the broadcast" not in page_html
    async with kz.db.read() as conn:
        actions = [tuple(r) for r in (await conn.execute(select(AuditEntry.actor, AuditEntry.action))).all()]
    assert ("organiser@example.org", "broadcast.cancel") in actions


async def test_a_scheduled_broadcast_goes_out_at_its_time_not_before(
    kz: Kiezstimme, http: TestClient, clock: Clock
) -> None:
    await seed_residents(kz.db, 2, languages=("de", "en"), channels=("webchat",), now=clock.now)
    await add_accounts(kz)
    scheduler = ReminderClock(kz)
    scheduler.plan()
    assert scheduler.scheduler.get_job(BROADCASTS_JOB) is not None  # in serve (SQLite) and clock (PostgreSQL)
    # the clock says 09:00 UTC, 10:00 in Berlin: send at 11:30 Berlin time
    async with as_role(http, kz, "organiser") as session:
        broadcast_id, location = await _confirm(session, send_at="2026-11-26T11:30")
        later_id, _ = await _confirm(session, send_at="2026-11-26T11:45")
        async with session.get(location) as resp:
            page_html = await resp.text()
        assert "scheduled for 2026-11-26 11:30" in page_html
        token = await csrf(session, location)
        status, _, _ = await post(session, f"/admin/broadcasts/{later_id}/cancel", {"csrf_token": token})
        assert status == 303
        async with session.get("/admin/broadcasts?lang=en") as resp:
            listing = await resp.text()
        assert "scheduled for 2026-11-26 11:30" in listing and "cancelled at 2026-11-26 10:00" in listing
        assert f'href="/admin/broadcasts/{broadcast_id}"' in listing
    await scheduler.fire_broadcasts()
    assert await count(kz.db, OutboundMessage) == 0
    clock.advance(minutes=89)  # 11:29
    await scheduler.fire_broadcasts()
    assert await count(kz.db, OutboundMessage) == 0
    clock.advance(minutes=1)
    # the real scheduler runs its check (every 20 s; here brought forward)
    scheduler.scheduler.start()
    try:
        scheduler.scheduler.modify_job(BROADCASTS_JOB, next_run_time=datetime.now(UTC) + timedelta(milliseconds=100))

        async def queued() -> bool:
            return await count(kz.db, OutboundMessage) == 2

        await wait_until(queued, timeout=10)
        await scheduler.fire_broadcasts()  # again: nothing twice
        assert await count(kz.db, OutboundMessage) == 2
        assert [m.text for m in await kz.service.take_pending("webchat", "1000001")] == ["Tonight: a meeting."]
        clock.advance(hours=1)  # the cancelled one's time passes: it never goes out
        await scheduler.fire_broadcasts()
        assert await count(kz.db, OutboundMessage) == 2
    finally:
        scheduler.stop()


async def test_only_organisers_broadcast_and_only_with_the_sessions_token(
    kz: Kiezstimme, http: TestClient, clock: Clock
) -> None:
    await seed_residents(kz.db, 2, channels=("webchat",), now=clock.now)
    await add_accounts(kz)
    form = {"text-de": "Hallo", "confirm": "yes"}
    for role in ("moderator", "viewer"):
        async with as_role(http, kz, role) as session:
            token = await csrf(session)
            for path in ("/admin/broadcasts", "/admin/broadcasts/new"):
                async with session.get(path, allow_redirects=False) as resp:
                    assert resp.status == 403
            status, _, _ = await post(session, "/admin/broadcasts", form | {"csrf_token": token})
            assert status == 403
    async with as_role(http, kz, "organiser") as session, as_role(http, kz, "viewer") as other:
        foreign = await csrf(other)
        for data in (form, form | {"csrf_token": ""}, form | {"csrf_token": foreign}):
            status, _, _ = await post(session, "/admin/broadcasts", data)
            assert status == 403
        # empty texts: the compose page again with the reason, nothing queued
        token = await csrf(session)
        status, body, _ = await post(session, "/admin/broadcasts?lang=en", {"csrf_token": token, "confirm": "yes"})
        assert status == 400 and "Write the text in at least one language." in body and "<textarea" in body
        unknown = {"csrf_token": token, "text-de": "Hallo", "district": "atlantis", "confirm": "yes"}
        status, body, _ = await post(session, "/admin/broadcasts?lang=en", unknown)
        assert status == 400 and "Unknown audience filter: atlantis" in body  # not dropped: that would send to all
        too_long = {"csrf_token": token, "text-de": "x" * 4001, "confirm": "yes"}
        status, body, _ = await post(session, "/admin/broadcasts?lang=en", too_long)
        assert status == 400 and "The text in Deutsch is longer than 4000 characters." in body
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=str(http.make_url("/")), cookie_jar=jar) as anonymous:
        status, _, location = await post(anonymous, "/admin/broadcasts", form)
        assert status == 303 and location == "/admin/login"
    assert await count(kz.db, OutboundMessage) == 0 and await count(kz.db, Broadcast) == 0


async def test_a_fallback_is_said_and_filters_narrow_the_audience(
    kz: Kiezstimme, http: TestClient, clock: Clock
) -> None:
    await seed_residents(kz.db, 3, languages=("de", "de-x-ls", "tr"), channels=("webchat",), now=clock.now)
    async with kz.db.transaction() as conn:  # the Turkish resident came through a partner's code
        await conn.execute(update(Resident).where(Resident.language == "tr").values(source="partner:nachbarn"))
    await add_accounts(kz)
    async with as_role(http, kz, "organiser") as session:
        token = await csrf(session)
        base = {"csrf_token": token, "text-de": "Kiezfest am Samstag."}
        _, preview, _ = await post(session, "/admin/broadcasts?lang=en", base | {"fallback": "de"})
        flags = preview[preview.index("Languages without a text") : preview.index("Audience per channel")]
        assert "Leichte Sprache" in flags and "because you chose it as the fallback" in flags
        assert "goes to 3 residents in 3 languages" in preview
        _, preview, _ = await post(session, "/admin/broadcasts?lang=en", [*base.items(), ("language", "de")])
        assert "goes to 1 residents in 1 languages" in preview and "Languages without a text" not in preview
        async with session.get("/admin/broadcasts/new") as resp:
            assert 'name="source" value="partner:nachbarn"' in await resp.text()
        chosen = [*base.items(), ("source", "partner:nachbarn"), ("fallback", "de")]
        _, preview, _ = await post(session, "/admin/broadcasts?lang=en", chosen)
        assert "goes to 1 residents in 1 languages" in preview and "Türkçe" in preview
        # "Change" goes back to the form with everything as it was
        status, form_again, _ = await post(
            session, "/admin/broadcasts?lang=en", [*hidden_fields(preview), ("edit", "yes")]
        )
        assert status == 200 and ">Kiezfest am Samstag.</textarea>" in form_again
        assert 'value="partner:nachbarn" checked' in form_again and '<option value="de" selected>' in form_again


# --- the CLI records its broadcasts too ------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_cli_broadcast_is_in_the_dashboards_list(
    kz: Kiezstimme, http: TestClient, database_url: str, tmp_path: Path
) -> None:
    from bot.cli.organisers import broadcast

    await seed_residents(kz.db, 2, languages=("de", "ar"), channels=("webchat",))
    await add_accounts(kz)
    args = argparse.Namespace(
        text=["de=Die Feedback-Phase beginnt.", f"ar={ARABIC}"],
        phase=None,
        fallback=None,
        channel=None,
        language=None,
        district=None,
        topic=None,
        dry_run=False,
        yes=True,
        key=None,
        no_wait=True,
    )
    too_long = argparse.Namespace(**{**vars(args), "key": "k" * 65})
    assert await broadcast(make_settings(database_url, tmp_path), too_long) == 2  # the table's key has 64
    assert await broadcast(make_settings(database_url, tmp_path), args) == 0
    assert await broadcast(make_settings(database_url, tmp_path), args) == 0  # again: one broadcast
    assert await count(kz.db, Broadcast) == 1 and await count(kz.db, OutboundMessage) == 2
    async with as_role(http, kz, "organiser") as session, session.get("/admin/broadcasts?lang=en") as resp:
        listing = await resp.text()
    assert "<td>cli</td>" in listing and "العربية" in listing
    # --source: only residents who arrived through that way (here: a partner's code)
    async with kz.db.transaction() as conn:
        await conn.execute(
            update(Resident)
            .where(Resident.id == select(func.min(Resident.id)).scalar_subquery())
            .values(source="partner:K7QX2M")
        )
    by_source = argparse.Namespace(
        **{**vars(args), "text": ["de=Danke an die Nachbarn.", "ar=شكرا"], "source": ["partner:K7QX2M"]}
    )
    assert await broadcast(make_settings(database_url, tmp_path), by_source) == 0
    assert await count(kz.db, OutboundMessage) == 3  # one more: the partner's resident only


# --- in Chromium ------------------------------------------------------------------------------------


async def fits(page: Any) -> bool:
    """Nothing wider than the screen (tables scroll inside their own box)."""
    return bool(await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_organiser_broadcasts_in_the_browser(page, kz: Kiezstimme, http: TestClient, clock: Clock) -> None:  # type: ignore[no-untyped-def]
    await seed_residents(kz.db, 3, languages=("de", "ar", "de-x-ls"), channels=("webchat",), now=clock.now)
    await add_accounts(kz)
    await page.set_viewport_size({"width": 360, "height": 740})  # a phone: every step fits its width
    await browser_sign_in(page, http, "organiser")
    await page.goto(str(http.make_url("/admin/broadcasts/new")))
    assert await page.locator("h1").inner_text() == "Neue Rundsendung"
    assert await axe_violations(page) == [] and await fits(page)
    await page.get_by_role("textbox", name="Deutsch (de)").fill("Kiezfest am Samstag <script>alert(1)</script>")
    await page.get_by_role("textbox", name="العربية (ar)").fill(ARABIC)
    await page.get_by_role("button", name="Vorschau").click()
    await page.wait_for_selector("text=Sprachen ohne Text")
    assert "Leichte Sprache" in await page.locator(".flags").inner_text()
    numbers = await page.locator("#numbers").inner_text()
    assert "2 Einwohner*innen in 2 Sprachen" in numbers
    assert "<script>" in await page.locator('.message[lang="de"]').first.inner_text()  # shown as text, inert
    assert await axe_violations(page) == [] and await fits(page)
    await page.get_by_role("button", name="Bestätigen: jetzt senden").click()
    await page.wait_for_url(re.compile(r".*/admin/broadcasts/\d+.*"))
    assert "Rundsendung" in await page.locator("h1").inner_text()
    assert await page.locator('#progress dd[data-stage="in web chat"]').first.inner_text() == "2"
    assert await axe_violations(page) == [] and await fits(page)
    await page.get_by_role("link", name="Alle Rundsendungen").click()
    await page.wait_for_url("**/admin/broadcasts")
    assert await page.locator("tbody tr").count() == 1
    assert await axe_violations(page) == [] and await fits(page)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_progress_page_follows_delivery_by_itself(page, idle_stack: Stack) -> None:  # type: ignore[no-untyped-def]
    kz, http, tg = idle_stack.kz, idle_stack.http, idle_stack.tg
    await browser_sign_in(page, http, "organiser")
    await page.goto(str(http.make_url("/admin/broadcasts/new")))
    await page.get_by_role("textbox", name="Deutsch (de)").fill("Kiezfest am Samstag!")
    await page.get_by_role("checkbox", name="Telegram").check()
    await page.get_by_role("button", name="Vorschau").click()
    await page.get_by_role("button", name="Bestätigen: jetzt senden").click()
    await page.wait_for_url(re.compile(r".*/admin/broadcasts/\d+.*"))
    assert await page.locator('dd[data-stage="queued"]').inner_text() == "2"  # nobody sends yet
    assert await page.locator("#progress[data-refresh]").count() == 1
    assert await axe_violations(page) == []
    kz.sender.start()
    try:  # the page's own script asks for the numbers and, once nothing waits, shows the final state
        await page.wait_for_selector("#state:has-text('abgeschlossen')", timeout=20_000)
    finally:
        await kz.sender.stop()
    assert await page.locator("#progress[data-refresh]").count() == 0
    assert await page.locator('dd[data-stage="sent"]').inner_text() == "2"
    assert await page.locator('dd[data-stage="queued"]').inner_text() == "0"
    assert sorted(m["chat_id"] for m in tg.sent_messages()) == [1_000_000, 1_000_002]
