"""Outreach partners in the dashboard: creating one (organisers only, CSRF checked, audited),
its entry points as QR codes (segno, SVG) and residents who arrive through its code by
Telegram, SMS and WhatsApp — through the fake providers, on SQLite and PostgreSQL — counted
on the list; the pages in Chromium with axe-core."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
import segno
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.app import Kiezstimme
from bot.storage.db import Database
from bot.storage.models import AuditEntry, Idea, Partner, Resident
from bot.storage.partners import CODE_ALPHABET, PartnerRepository, linked_code, new_code, typed_code
from bot.web.admin.partners import qr_svg
from tests.conftest import Clock
from tests.dashboard_helpers import add_accounts, as_role, axe_violations, browser_sign_in, csrf
from tests.fakes.telegram import FakeTelegram
from tests.fakes.twilio import FakeTwilio, sign
from tests.test_channels import IDEA, SMS_FROM, TOKEN, WA_FROM, Stack, running, stack_settings

BOT = "kiezstimme_test_bot"
# http: the dashboard's session cookie is Secure on an https PUBLIC_URL, and the test client
# talks plain http to the loopback server
PUBLIC = "http://bot.example.org"
CODE = re.compile(rf"[{CODE_ALPHABET}]{{6}}")
NUMS = re.compile(r'<td class="num"[^>]*>(\d+)</td>')


class PartnerStack(Stack):
    """tests.test_channels' Stack, with Twilio's requests signed for this PUBLIC_URL."""

    async def twilio(self, path: str, params: dict[str, Any], signature: str | None = "valid") -> int:
        headers = {"X-Twilio-Signature": sign(self.tw.auth_token, PUBLIC + path, params)}
        resp = await self.http.post(path, data=params, headers=headers)
        assert resp.status == 200, await resp.text()
        await self.settle()
        return resp.status


@pytest_asyncio.fixture
async def stack(db: Database, database_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Stack]:
    """The bot with fake Telegram and Twilio, every channel set up (the bot's Telegram name too)."""
    os.environ.pop("TWILIO_REGION", None)
    os.environ.pop("TWILIO_EDGE", None)
    async with FakeTelegram(token=TOKEN) as tg, FakeTwilio() as tw:
        settings = stack_settings(database_url, tmp_path, tg, tw, PUBLIC_URL=PUBLIC, TELEGRAM_BOT_USERNAME=BOT)
        async with running(settings, db, clock, tg, tw, PartnerStack) as partner_stack:
            await add_accounts(partner_stack.kz)
            yield partner_stack


async def create(session: aiohttp.ClientSession, name: str, kind: str = "shelter", district: str = "") -> str:
    """Create a partner through the form; its page's path."""
    token = await csrf(session, "/admin/partners")
    data = {"csrf_token": token, "name": name, "kind": kind, "district": district}
    async with session.post("/admin/partners", data=data, allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()
        return resp.headers["Location"]


async def the_partner(kz: Kiezstimme) -> Any:
    async with kz.db.read() as conn:
        return (await conn.execute(select(Partner))).one()


async def count(kz: Kiezstimme, model: type, *where: Any) -> int:
    async with kz.db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


async def counts_on_list(session: aiohttp.ClientSession, name: str) -> list[int]:
    """The numbers in the partner's row of the list page."""
    async with session.get("/admin/partners") as resp:
        assert resp.status == 200
        html = await resp.text()
    row = next(r for r in html.split("<tr>") if f">{name}</a>" in r)
    return [int(n) for n in NUMS.findall(row)]


# --- creating a partner ---------------------------------------------------------------------


async def test_an_organiser_creates_a_partner(kz: Kiezstimme, http: TestClient) -> None:
    await add_accounts(kz)
    async with as_role(http, kz, "organiser") as organiser:
        async with organiser.get("/admin/partners?lang=en") as resp:
            html = await resp.text()
        assert resp.status == 200 and "No partners yet." in html
        assert '<option value="youth_centre">Youth centre</option>' in html
        assert '<option value="neukoelln">Neukölln</option>' in html and 'value="none"' not in html
        where = await create(organiser, "Jugendclub <Manege>", "youth_centre", "neukoelln")
        partner = await the_partner(kz)
        assert where == f"/admin/partners/{partner.id}"
        assert CODE.fullmatch(partner.code) and (partner.name, partner.kind, partner.district) == (
            "Jugendclub <Manege>",
            "youth_centre",
            "neukoelln",
        )
        async with organiser.get(where) as resp:
            html = await resp.text()
        assert resp.status == 200 and partner.code in html
        assert "Jugendclub &lt;Manege&gt;" in html and "<Manege>" not in html  # escaped
        assert await counts_on_list(organiser, "Jugendclub &lt;Manege&gt;") == [0, 0, 0, 0]
    async with kz.db.read() as conn:
        entry = (await conn.execute(select(AuditEntry).where(AuditEntry.action == "partner.create"))).one()
    assert entry.actor == "organiser@example.org" and entry.target == partner.code
    assert entry.detail["kind"] == "youth_centre"


async def test_an_organiser_changes_name_kind_and_district_but_never_the_code(kz: Kiezstimme, http: TestClient) -> None:
    await add_accounts(kz)
    async with as_role(http, kz, "organiser") as organiser:
        where = await create(organiser, "Stadtteilbibliothek", "library")
        before = await the_partner(kz)
        token = await csrf(organiser, where)
        data = {"csrf_token": token, "name": "Bibliothek am Wasserturm", "kind": "library", "district": "pankow"}
        async with organiser.post(where, data=data, allow_redirects=False) as resp:
            assert resp.status == 303
        bad = dict(data, name="  ", district="atlantis")
        async with organiser.post(where + "?lang=en", data=bad, allow_redirects=False) as resp:
            html = await resp.text()
        assert resp.status == 400 and "Please enter the partner" in html and "district from the list" in html
    after = await the_partner(kz)
    assert (after.code, after.name, after.district) == (before.code, "Bibliothek am Wasserturm", "pankow")
    assert await count(kz, AuditEntry, AuditEntry.action == "partner.update") == 1


async def test_roles_csrf_and_sessions_guard_partners(kz: Kiezstimme, http: TestClient) -> None:
    await add_accounts(kz)
    form = {"name": "Notunterkunft", "kind": "shelter", "district": ""}
    async with as_role(http, kz, "moderator") as moderator:
        token = await csrf(moderator, "/admin/partners")
        async with moderator.post("/admin/partners", data=dict(form, csrf_token=token), allow_redirects=False) as resp:
            assert resp.status == 403
        async with moderator.get("/admin/partners") as resp:  # reading the counts is fine
            html = await resp.text()
        assert resp.status == 200 and 'name="kind"' not in html
    async with as_role(http, kz, "organiser") as organiser:
        async with organiser.post("/admin/partners", data=form, allow_redirects=False) as resp:
            assert resp.status == 403  # no CSRF token
        async with organiser.post("/admin/partners", data=dict(form, csrf_token=token), allow_redirects=False) as resp:
            assert resp.status == 403  # the moderator's session's token
        async with organiser.post(
            "/admin/partners", data=dict(form, kind="casino", csrf_token=await csrf(organiser)), allow_redirects=False
        ) as resp:
            assert resp.status == 400
    assert await count(kz, Partner) == 0
    for path in ("/admin/partners", "/admin/partners/1", "/admin/partners/1/qr/sms.svg"):
        async with aiohttp.ClientSession(base_url=str(http.make_url("/"))) as anonymous:
            async with anonymous.get(path, allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/admin/login"
            async with anonymous.get(path, headers={"Accept": "application/json"}) as resp:
                assert resp.status == 401
    async with aiohttp.ClientSession(base_url=str(http.make_url("/"))) as anonymous:
        async with anonymous.post("/admin/partners", data=form, allow_redirects=False) as resp:
            assert resp.status == 303
    assert await count(kz, Partner) == 0


async def test_without_channels_there_are_no_entry_points(kz: Kiezstimme, http: TestClient) -> None:
    await add_accounts(kz)
    async with as_role(http, kz, "organiser") as organiser:
        where = await create(organiser, "Schule an der Ecke", "school")
        async with organiser.get(where + "?lang=en") as resp:
            html = await resp.text()
        assert "No channel is set up yet" in html and "TELEGRAM_BOT_USERNAME" in html and "<img" not in html
        async with organiser.get(where + "/qr/telegram.svg") as resp:
            assert resp.status == 404
        async with organiser.get("/admin/partners/999") as resp:
            assert resp.status == 404


def test_codes_are_short_unambiguous_and_typed_in_any_case() -> None:
    codes = {new_code() for _ in range(500)}
    assert len(codes) > 490
    for code in codes:
        assert CODE.fullmatch(code) and not set(code) & set("01OI")
        assert any(c.isdigit() for c in code) and any(c.isalpha() for c in code)
    assert typed_code("ab3cde") == "AB3CDE" and typed_code(" Start  AB3CDE ") == "AB3CDE"
    assert typed_code("START AB3CDE!") == "AB3CDE"
    assert typed_code("Hallo") is None and typed_code("START") is None and typed_code("AB3CDE bitte") is None
    assert typed_code("AB0CDE") is None  # 0 is not in the alphabet
    assert linked_code("p_ab3cde") == "AB3CDE" and linked_code("plakat-neukoelln") is None
    assert linked_code("p_AB3CDEF") is None and linked_code(None) is None


async def test_a_viewer_reads_a_partner_but_cannot_change_it(kz: Kiezstimme, http: TestClient) -> None:
    await add_accounts(kz)
    async with as_role(http, kz, "organiser") as organiser:
        where = await create(organiser, "Stadtbibliothek", "library")
    async with as_role(http, kz, "viewer") as viewer:
        async with viewer.get(where) as resp:
            html = await resp.text()
        assert resp.status == 200 and "Stadtbibliothek" in html and 'name="kind"' not in html
        data = {"csrf_token": await csrf(viewer, where), "name": "Umbenannt", "kind": "other", "district": ""}
        async with viewer.post(where, data=data, allow_redirects=False) as resp:
            assert resp.status == 403
    assert (await the_partner(kz)).name == "Stadtbibliothek"


# --- entry points and QR codes ----------------------------------------------------------------


async def test_entry_points_are_links_with_qr_codes_of_exactly_them(stack: Stack) -> None:
    async with as_role(stack.http, stack.kz, "organiser") as organiser:
        where = await create(organiser, "Integrationsverein Nord", "migrant_association", "mitte")
        code = (await the_partner(stack.kz)).code
        async with organiser.get(where) as resp:
            html = await resp.text()
        expected = {
            "telegram": f"https://t.me/{BOT}?start=p_{code}",
            "whatsapp": f"https://wa.me/{WA_FROM.removeprefix('whatsapp:+')}?text=START%20{code}",
            "sms": f"SMSTO:{SMS_FROM}:START {code}",
        }
        assert f'href="{expected["telegram"]}"' in html and f'href="{expected["whatsapp"]}"' in html
        assert f"START {code}" in html and SMS_FROM in html  # the SMS keyword and number, printed
        for kind, content in expected.items():
            assert f'src="/admin/partners/{where.rsplit("/", 1)[1]}/qr/{kind}.svg"' in html
            async with organiser.get(f"{where}/qr/{kind}.svg") as resp:
                assert resp.status == 200 and resp.content_type == "image/svg+xml"
                body = await resp.read()
            root = ET.fromstring(body)
            assert root.tag == "{http://www.w3.org/2000/svg}svg"
            path = root.find("{http://www.w3.org/2000/svg}path")
            assert path is not None and len(path.get("d", "")) > 100
            assert body == qr_svg(content, title=content if kind != "sms" else f"START {code}")
            # the same modules as segno makes of exactly that content (and not of another)
            assert path.get("d") == _path_of(segno.make(content, error="m", micro=False))
            assert path.get("d") != _path_of(segno.make(content + "x", error="m", micro=False))
    async with aiohttp.ClientSession(base_url=str(stack.http.make_url("/"))) as anonymous:
        async with anonymous.get(f"{where}/qr/telegram.svg", allow_redirects=False) as resp:
            assert resp.status == 303


def _path_of(qr: segno.QRCode) -> str:
    import io

    buf = io.BytesIO()
    qr.save(buf, kind="svg", scale=8, border=4)
    path = ET.fromstring(buf.getvalue()).find("{http://www.w3.org/2000/svg}path")
    assert path is not None
    return path.get("d", "")


# --- attribution ------------------------------------------------------------------------------


async def test_residents_arriving_through_a_code_are_counted_for_the_partner(stack: Stack) -> None:
    async with as_role(stack.http, stack.kz, "organiser") as organiser:
        await create(organiser, "Jugendzentrum Sonnenallee", "youth_centre", "neukoelln")
        code = (await the_partner(stack.kz)).code
        source = f"partner:{code}"

        # Telegram: the deep link's payload p_CODE
        assert await stack.tg_text(5001, f"/start p_{code}") == 200
        assert await count(stack.kz, Resident, Resident.source == source) == 1
        assert stack.tg.sent_messages(5001), "the deep link starts the dialogue"

        # SMS: a first message START code (any case), answered like START, then a whole idea
        assert await stack.sms("+4915100000001", "START") == 200
        greeting = stack.tw.sent_to("+4915100000001")[0]["Body"]
        number = "+4915100000002"
        assert await stack.sms(number, f"start {code.lower()}") == 200
        first = stack.tw.sent_to(number)[0]["Body"]
        assert first == greeting and "Deutsch" in first  # the normal first answer: the language menu
        assert await count(stack.kz, Resident, Resident.source == source) == 2
        for body in ["1", "1", "1", "2", IDEA, "3", "1", "1"]:
            await stack.sms(number, body)
        assert any("Ihre Nummer ist" in m["Body"] for m in stack.tw.sent_to(number))
        assert await count(stack.kz, Idea) == 1

        # WhatsApp: the wa.me link's prefilled START CODE
        await stack.whatsapp("+4917600000003", f"START {code}")
        assert stack.tw.sent_to("whatsapp:+4917600000003")[0]["Body"] == greeting
        assert await count(stack.kz, Resident, Resident.source == source) == 3

        # not counted: an unknown code (it is just text), the code typed later in a dialogue,
        # and a Telegram payload that is no partner's
        await stack.sms("+4915100000004", "START ZZ22ZZ")
        assert stack.tw.sent_to("+4915100000004")[0]["Body"] == greeting  # it reached the dialogue
        await stack.sms("+4915100000001", code)
        await stack.tg_text(5002, "/start p_ZZ22ZZ")
        await stack.tg_text(5003, "/start plakat-neukoelln")
        assert await count(stack.kz, Resident, Resident.source == source) == 3
        async with stack.kz.db.read() as conn:
            others = set((await conn.execute(select(Resident.source).where(Resident.source != source))).scalars())
        assert others == {"p_ZZ22ZZ", "plakat-neukoelln"}  # other payloads kept as they were

        assert await counts_on_list(organiser, "Jugendzentrum Sonnenallee") == [3, 1, 1, 1]
        reach = await PartnerRepository(stack.kz.db).reach()
        assert [(r.partner.code, r.arrived, r.consented, r.with_idea, r.ideas) for r in reach] == [(code, 3, 1, 1, 1)]


# --- in Chromium --------------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_in_chromium_an_organiser_creates_a_partner_and_sees_its_qr_codes(stack: Stack, page: Any) -> None:
    await page.set_viewport_size({"width": 360, "height": 780})
    await browser_sign_in(page, stack.http, "organiser", lang="en")
    await page.goto(str(stack.http.make_url("/admin/partners?lang=en")))
    assert await axe_violations(page) == []
    await page.get_by_label("Name of the partner").fill("Frauentreff Wedding")
    await page.get_by_label("Kind of partner").select_option("social_service")
    await page.get_by_label("District").select_option("mitte")
    await page.get_by_role("button", name="Create partner").click()
    await page.wait_for_url("**/admin/partners/*")
    await page.get_by_role("heading", name="Frauentreff Wedding").wait_for()
    images = page.locator("img.qr")
    assert await images.count() == 3
    for i in range(3):
        image = images.nth(i)
        await image.scroll_into_view_if_needed()
        await page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=await image.element_handle())
        assert "QR code" in (await image.get_attribute("alt") or "")
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    assert await axe_violations(page) == []
    await page.emulate_media(media="print")
    assert await page.locator("form").first.is_hidden() and await images.first.is_visible()
    await page.emulate_media(media="screen")

    await page.goto(str(stack.http.make_url("/admin/partners?lang=de")))
    assert await page.get_by_role("heading", name="Partner vor Ort").is_visible()
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    assert await axe_violations(page) == []
    await page.get_by_role("link", name="Frauentreff Wedding").click()
    await page.get_by_role("heading", name="Über Telegram").wait_for()
    assert await axe_violations(page) == []
