"""Moderation in the dashboard: ideas searched, filtered and paged; an idea moderated with a
public note told to the resident in their language; feedback comments; residents' media only
for a session — over HTTP on SQLite and PostgreSQL, and in Chromium with axe-core."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import re
import wave
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, insert, select

from bot.app import Kiezstimme
from bot.storage.models import AuditEntry, Feedback, Idea, OutboundMessage, Resident
from bot.storage.seed import seed_residents
from tests import test_channels
from tests.conftest import Clock
from tests.dashboard_helpers import ACCOUNTS, add_accounts, as_role, axe_violations, browser_sign_in, csrf, sign_in
from tests.fakes.telegram import make_photo_update, make_voice_update
from tests.test_channels import Stack, texts
from tests.test_cli import run
from tests.test_phases import webchat

fakes, stack = test_channels.fakes, test_channels.stack  # the running bot and its provider fakes (fixtures)
REFERENCE = re.compile(r"\b[A-Z0-9]{3}-[A-Z0-9]{3}\b")
LINKED = re.compile(r'href="/admin/ideas/([A-Z0-9]{3}-[A-Z0-9]{3})"')
TURKISH_IDEA = ["👋", "3", "1", "1", "1", "Kanal boyunca daha fazla ağaç ve gölge", "1", "1", "1"]
GERMAN_IDEA = ["👋", "1", "1", "1", "1", "Mehr Bäume und Schatten am Kanal", "1", "1", "1"]


async def idea_by_talking(kz: Kiezstimme, client: str, lines: list[str]) -> str:
    """A resident gives an idea in the web chat; its reference."""
    replies = await webchat(kz, client, *lines)
    found = [m.group(0) for r in replies for m in REFERENCE.finditer(r)]
    assert found, replies
    return found[-1]


async def seed_ideas(kz: Kiezstimme, count: int, now: datetime, **overrides: Any) -> list[str]:
    """``count`` ideas of seeded residents, one minute apart (the last is the newest)."""
    ids = await seed_residents(kz.db, count, languages=("de", "ar"), channels=("webchat",), now=now)
    rows = [
        {
            "reference": f"S{i:02d}-{i % 1000:03d}"[:7] if count < 100 else f"T{i // 100:02d}-{i % 100:03d}"[:7],
            "resident_id": rid,
            "text": f"Gesammelte Idee Nummer {i}",
            "topic": ("mobility", "climate")[i % 2],
            "district": ("mitte", "neukoelln", None)[i % 3],
            "language": ("de", "ar")[i % 2],
            "channel": "webchat",
            "media": [],
            "status": "new",
            "created_at": now + timedelta(minutes=i),
            **overrides,
        }
        for i, rid in enumerate(ids)
    ]
    async with kz.db.transaction() as conn:
        await conn.execute(insert(Idea), rows)
    return [r["reference"] for r in rows]


def found(page: str) -> int:
    """The count a list page states (English or German UI)."""
    match = re.search(r"(?:Ideas found|Comments found|Gefundene Ideen|Gefundene Kommentare): (\d+)", page)
    assert match, page
    return int(match.group(1))


async def body(session: aiohttp.ClientSession, path: str) -> str:
    async with session.get(path) as resp:
        assert resp.status == 200, (path, resp.status)
        return await resp.text()


async def audit_rows(kz: Kiezstimme) -> list[Any]:
    async with kz.db.read() as conn:
        return list((await conn.execute(select(AuditEntry.__table__).order_by(AuditEntry.id))).all())


async def idea_row(kz: Kiezstimme, reference: str) -> Any:
    async with kz.db.read() as conn:
        return (await conn.execute(select(Idea.__table__).where(Idea.reference == reference))).one()


async def outbox_count(kz: Kiezstimme) -> int:
    async with kz.db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(OutboundMessage))).scalar_one()


# --- list, search, filters, paging ---------------------------------------------------------------------


async def test_search_by_reference_and_by_words(http: TestClient, kz: Kiezstimme) -> None:
    await add_accounts(kz)
    reference = await idea_by_talking(kz, "tr-1", TURKISH_IDEA)
    await idea_by_talking(kz, "de-1", GERMAN_IDEA)
    async with as_role(http, kz, "viewer") as viewer:
        page = await body(viewer, f"/admin/ideas?q={reference.lower()}&lang=en")
        assert f'href="/admin/ideas/{reference}"' in page and found(page) == 1
        assert "Kanal boyunca" in page and "Mehr Bäume" not in page
        without_dash = await body(viewer, f"/admin/ideas?q={reference.replace('-', '').lower()}&lang=en")
        assert f'href="/admin/ideas/{reference}"' in without_dash and found(without_dash) == 1
        page = await body(viewer, "/admin/ideas?q=SCHATTEN+kanal&lang=en")  # words, any case, any order
        assert "Mehr Bäume und Schatten am Kanal" in page and "Kanal boyunca" not in page
        for query in ("BÄUME", "AĞAÇ"):  # any case in any script, on SQLite too
            assert found(await body(viewer, f"/admin/ideas?q={query}&lang=en")) == 1, query
        page = await body(viewer, "/admin/ideas?q=100%25&lang=en")  # LIKE's own characters are literal
        assert found(page) == 0
        # topic and district as labels, in the dashboard's language
        german = await body(viewer, f"/admin/ideas?q={reference}&lang=de")
        assert "Mobilität" in german and "Mitte" in german and "Türkçe (tr)" in german


async def test_filters_and_paging(http: TestClient, kz: Kiezstimme, clock: Clock) -> None:
    await add_accounts(kz)
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)  # inside the open test phase
    refs = await seed_ideas(kz, 120, start)
    async with kz.db.transaction() as conn:
        await conn.execute(
            Idea.__table__.update()
            .where(Idea.reference == refs[7])
            .values(media=[{"kind": "voice", "ref": "x/y.ogg", "mime": "audio/ogg", "size": 3}])
        )
        before_any_phase = datetime(2019, 6, 1, tzinfo=UTC)  # the test process's phases start in 2020
        await conn.execute(
            Idea.__table__.update().where(Idea.reference.in_(refs[:5])).values(created_at=before_any_phase)
        )
        await conn.execute(
            Resident.__table__.update()
            .where(Resident.id == select(Idea.resident_id).where(Idea.reference == refs[8]).scalar_subquery())
            .values(source="partner:jugendzentrum")
        )
    async with as_role(http, kz, "viewer") as viewer:
        first = await body(viewer, "/admin/ideas?lang=en")
        assert found(first) == 120 and "Page 1 of 3" in first
        shown = LINKED.findall(first)
        assert shown[0] == refs[-1] and refs[70] in shown and refs[69] not in shown  # newest first, 50 a page
        last = await body(viewer, "/admin/ideas?lang=en&page=3")
        assert refs[0] in last and refs[20] not in last and 'rel="prev"' in last and 'rel="next"' not in last
        assert found(await body(viewer, "/admin/ideas?lang=en&topic=climate")) == 60
        assert "Page 1 of 3" in await body(viewer, "/admin/ideas?lang=en&page=%C2%B2")  # not a page number
        assert found(await body(viewer, "/admin/ideas?lang=en&district=none")) == 40
        assert found(await body(viewer, "/admin/ideas?lang=en&district=mitte&topic=climate")) == 20
        assert found(await body(viewer, "/admin/ideas?lang=en&language=ar")) == 60
        assert found(await body(viewer, "/admin/ideas?lang=en&channel=sms")) == 0
        assert found(await body(viewer, "/admin/ideas?lang=en&status=new&phase=collection")) == 115
        assert found(await body(viewer, "/admin/ideas?lang=en&phase=feedback&topic=climate")) == 58  # refs 1, 3
        with_media = await body(viewer, "/admin/ideas?lang=en&media=yes")
        assert found(with_media) == 1 and refs[7] in with_media
        assert found(await body(viewer, "/admin/ideas?lang=en&media=no")) == 119
        by_partner = await body(viewer, "/admin/ideas?lang=en&source=partner%3Ajugendzentrum")
        assert found(by_partner) == 1 and refs[8] in by_partner
        # the pager keeps the filters
        climate = await body(viewer, "/admin/ideas?lang=en&topic=climate")
        assert "topic=climate" in re.search(r'href="([^"]*)" rel="next"', climate).group(1)  # type: ignore[union-attr]


async def test_bulk_status_change_is_audited(http: TestClient, kz: Kiezstimme) -> None:
    await add_accounts(kz)
    refs = await seed_ideas(kz, 3, datetime(2026, 11, 20, tzinfo=UTC))
    async with as_role(http, kz, "moderator") as moderator:
        token = await csrf(moderator, "/admin/ideas")
        form = aiohttp.FormData(
            [("csrf_token", token), ("status", "spam"), ("reference", refs[0]), ("reference", refs[2])]
        )
        form.add_field("back", "topic=mobility&evil=1")
        async with moderator.post("/admin/ideas", data=form, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/admin/ideas?topic=mobility&changed=2"
    assert [(await idea_row(kz, r)).status for r in refs] == ["spam", "new", "spam"]
    rows = [r for r in await audit_rows(kz) if r.action == "idea-status"]
    assert sorted(r.target for r in rows) == sorted([refs[0], refs[2]])
    assert all(r.actor == "moderator@example.org" and r.detail["old"] == "new" for r in rows)
    assert await outbox_count(kz) == 0  # spam is never told


# --- moderation of one idea ------------------------------------------------------------------------------


async def test_moderation_tells_the_resident_in_their_language_with_the_note(http: TestClient, kz: Kiezstimme) -> None:
    await add_accounts(kz)
    reference = await idea_by_talking(kz, "tr-resident", TURKISH_IDEA)
    async with as_role(http, kz, "moderator") as moderator:
        detail = await body(moderator, f"/admin/ideas/{reference}?lang=de")
        assert '<select id="status" name="status">' in detail and 'name="notify" checked' in detail
        assert '<textarea id="note" name="note"' in detail and 'name="internal_note"' in detail
        token = await csrf(moderator, f"/admin/ideas/{reference}")
        data = {
            "csrf_token": token,
            "status": "approved",
            "note": "Wir prüfen das mit dem Grünflächenamt.",
            "notify": "on",
            "internal_note": "an Frau K. weitergeleitet",
        }
        async with moderator.post(f"/admin/ideas/{reference}?lang=de", data=data, allow_redirects=False) as resp:
            assert resp.status == 303
            location = resp.headers["Location"]
        assert location.startswith(f"/admin/ideas/{reference}?")
        confirmation = await body(moderator, location)
        assert "Gespeichert" in confirmation and "an Frau K. weitergeleitet" in confirmation
    idea = await idea_row(kz, reference)
    assert (idea.status, idea.public_note, idea.internal_note) == (
        "approved",
        "Wir prüfen das mit dem Grünflächenamt.",
        "an Frau K. weitergeleitet",
    )
    assert idea.moderated_at is not None
    notice = [m.text for m in await kz.service.take_pending("webchat", "tr-resident")]
    assert len(notice) == 1, notice
    assert reference in notice[0] and "Ekipten bir not: Wir prüfen das mit dem Grünflächenamt." in notice[0]
    assert "kabul" in notice[0]  # Turkish: "accepted"
    entry = [r for r in await audit_rows(kz) if r.action == "idea-status"][-1]
    assert (entry.actor, entry.target) == ("moderator@example.org", reference)
    assert entry.detail["old"] == "new" and entry.detail["new"] == "approved" and entry.detail["notified"] is True


async def test_without_notify_nothing_is_sent(http: TestClient, kz: Kiezstimme) -> None:
    await add_accounts(kz)
    reference = await idea_by_talking(kz, "quiet", GERMAN_IDEA)
    before = await outbox_count(kz)
    async with as_role(http, kz, "moderator") as moderator:
        token = await csrf(moderator, f"/admin/ideas/{reference}")
        data = {"csrf_token": token, "status": "hidden", "note": "Doppelt eingereicht", "internal_note": ""}
        async with moderator.post(f"/admin/ideas/{reference}", data=data, allow_redirects=False) as resp:
            assert resp.status == 303
    assert (await idea_row(kz, reference)).status == "hidden"
    assert await outbox_count(kz) == before and await kz.service.take_pending("webchat", "quiet") == []
    entry = [r for r in await audit_rows(kz) if r.action == "idea-status"][-1]
    assert entry.detail["notified"] is False


async def test_viewer_and_bad_tokens_change_nothing(http: TestClient, kz: Kiezstimme) -> None:
    await add_accounts(kz)
    reference = await idea_by_talking(kz, "guarded", GERMAN_IDEA)
    async with as_role(http, kz, "viewer") as viewer, as_role(http, kz, "moderator") as moderator:
        page = await body(viewer, f"/admin/ideas/{reference}")
        assert 'name="status"' not in page and 'name="note"' not in page  # no form for a viewer
        assert 'name="reference"' not in await body(viewer, "/admin/ideas")  # nor bulk checkboxes
        token = await csrf(viewer, f"/admin/ideas/{reference}")
        data = {"csrf_token": token, "status": "spam", "notify": "on", "note": "x"}
        async with viewer.post(f"/admin/ideas/{reference}", data=data, allow_redirects=False) as resp:
            assert resp.status == 403
        bulk = {"csrf_token": token, "status": "spam", "reference": reference}
        async with viewer.post("/admin/ideas", data=bulk, allow_redirects=False) as resp:
            assert resp.status == 403
        other = await csrf(viewer)  # a token of another session is wrong
        for token in (None, "wrong", other):
            data = {"status": "spam", "notify": "on", "note": "x", **({"csrf_token": token} if token else {})}
            async with moderator.post(f"/admin/ideas/{reference}", data=data, allow_redirects=False) as resp:
                assert resp.status == 403
    idea = await idea_row(kz, reference)
    assert (idea.status, idea.public_note) == ("new", None)
    assert not [r for r in await audit_rows(kz) if r.action == "idea-status"]
    assert await kz.service.take_pending("webchat", "guarded") == []


async def test_script_in_an_idea_is_escaped(http: TestClient, kz: Kiezstimme) -> None:
    await add_accounts(kz)
    attack = "<script>alert(1)</script> & <img src=x onerror=alert(2)>"
    lines = [*GERMAN_IDEA[:5], attack, *GERMAN_IDEA[6:]]
    reference = await idea_by_talking(kz, "mallory", lines)
    async with as_role(http, kz, "moderator") as moderator:
        for path in ("/admin/ideas", f"/admin/ideas/{reference}"):
            page = await body(moderator, path)
            assert "<script>alert(1)" not in page and "<img src=x" not in page
            assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(2)&gt;" in page


async def test_unknown_idea_is_a_404_page(http: TestClient, kz: Kiezstimme) -> None:
    await add_accounts(kz)
    async with as_role(http, kz, "viewer") as viewer:
        async with viewer.get("/admin/ideas/ZZZ-ZZZ?lang=en") as resp:
            assert resp.status == 404 and "There is no idea with the reference ZZZ-ZZZ." in await resp.text()


# --- media --------------------------------------------------------------------------------------------------


def wav_bytes(seconds: float = 0.5) -> bytes:
    """A real (silent) WAV file, playable by a browser."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * int(8000 * seconds))
    return buf.getvalue()


# the smallest baseline JPEG (1×1 px, grey): a photo a browser really decodes
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////////////////"
    "////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/aAAgBAQABPxA="
)


async def voice_idea(stack: Stack, chat: int, audio: bytes, photo: bytes | None = None) -> str:
    """A resident gives an idea as a voice note (and a photo) on Telegram; its reference."""
    await stack.tg_text(chat, "Hallo")
    for data in ["yes", "idea", "mobility"]:
        await stack.tg_press(chat, data)
    stack.tg.add_file(f"voice-{chat}", audio, file_path=f"voice/file_{chat}.wav")
    voice = make_voice_update(stack.next_id(), chat, f"voice-{chat}", 3, len(audio), mime_type="audio/wav")
    await stack.telegram(voice)
    if photo is None:
        await stack.tg_press(chat, "skip")
    else:
        stack.tg.add_file(f"photo-{chat}", photo, file_path=f"photos/file_{chat}.jpg")
        await stack.telegram(make_photo_update(stack.next_id(), chat, f"photo-{chat}", file_size=len(photo)))
    for data in ["mitte", "yes", "send"]:
        await stack.tg_press(chat, data)
    found = [m.group(0) for t in texts(stack.tg, chat) for m in REFERENCE.finditer(t)]
    assert found, texts(stack.tg, chat)
    return found[-1]


@contextlib.asynccontextmanager
async def as_role_on_https(stack: Stack, role: str) -> AsyncIterator[aiohttp.ClientSession]:
    """Signed in to the stack, whose public URL is https (its session cookie is Secure)."""
    origin = str(stack.http.make_url("/"))
    jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=[origin])
    async with aiohttp.ClientSession(base_url=origin, cookie_jar=jar) as session:
        resp = await sign_in(session, ACCOUNTS[role])
        assert resp.status == 303
        yield session


async def test_media_only_for_a_session(stack: Stack) -> None:
    await add_accounts(stack.kz)
    audio = wav_bytes()
    reference = await voice_idea(stack, 71, audio, JPEG)
    path = f"/admin/media/{reference}/0"
    resp = await stack.http.get(path, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/admin/login"
    async with as_role_on_https(stack, "viewer") as viewer:
        async with viewer.get(path) as resp:
            assert resp.status == 200 and await resp.read() == audio
            assert resp.headers["Content-Type"] == "audio/wav"
            assert resp.headers["Content-Disposition"] == "inline"
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert "no-store" in resp.headers["Cache-Control"] and "private" in resp.headers["Cache-Control"]
        async with viewer.get(f"/admin/media/{reference}/1") as resp:
            assert resp.status == 200 and await resp.read() == JPEG and resp.headers["Content-Type"] == "image/jpeg"
        odd = (f"/admin/media/{reference}/%C2%B2", "/admin/media/feedback-%C2%B2/0", "/admin/media/feedback-1/0")
        for missing in (f"/admin/media/{reference}/2", f"/admin/media/{reference}/x", "/admin/media/ZZZ-ZZZ/0", *odd):
            async with viewer.get(missing) as resp:
                assert resp.status == 404, missing
        for traversal in ("/admin/media/..%2F..%2Fetc/0", f"/admin/media/{reference}/..%2F..%2Fpasswd"):
            async with viewer.get(traversal) as resp:
                assert resp.status == 404, traversal
        page = await body(viewer, f"/admin/ideas/{reference}")
        assert f'<audio controls preload="metadata" src="{path}"></audio>' in page
        assert f'<img src="/admin/media/{reference}/1" alt="Foto 1, von der Person geschickt">' in page


# --- feedback comments ---------------------------------------------------------------------------------------


async def seed_feedback(kz: Kiezstimme, now: datetime) -> list[int]:
    ids = await seed_residents(kz.db, 4, languages=("de", "uk"), channels=("webchat",), now=now, start=500)
    rows = [
        {
            "resident_id": rid,
            "statement": ("streets", "open-data")[i % 2],
            "rating": ("agree", "disagree")[i % 2],
            "comment": ["Mehr Radwege <b>bitte</b>", "Daten ja, aber anonym", "", "Більше автобусів"][i],
            "media": [],
            "language": ("de", "uk")[i % 2],
            "channel": "webchat",
            "created_at": now,
            "updated_at": now + timedelta(minutes=i),
            "status": "new",
        }
        for i, rid in enumerate(ids)
    ]
    async with kz.db.transaction() as conn:
        await conn.execute(insert(Feedback), rows)
        return list((await conn.execute(select(Feedback.id).order_by(Feedback.id))).scalars())


async def test_feedback_comments_filtered_and_moderated(http: TestClient, kz: Kiezstimme) -> None:
    await add_accounts(kz)
    ids = await seed_feedback(kz, datetime(2026, 11, 20, tzinfo=UTC))
    async with as_role(http, kz, "moderator") as moderator:
        page = await body(moderator, "/admin/feedback?lang=en")
        assert found(page) == 3  # the bare rating is not a comment
        assert "Mehr Radwege &lt;b&gt;bitte&lt;/b&gt;" in page and "<b>bitte" not in page
        assert "Streets give more room to walking, cycling and buses." in page
        german = await body(moderator, "/admin/feedback?lang=de&rating=disagree")
        assert found(german) == 2 and "Більше автобусів" in german
        assert found(await body(moderator, "/admin/feedback?lang=en&q=БІЛЬШЕ")) == 1
        assert found(await body(moderator, "/admin/feedback?lang=en&language=de&statement=streets")) == 1
        token = await csrf(moderator, "/admin/feedback")
        form = aiohttp.FormData([("csrf_token", token), ("status", "hidden"), ("id", str(ids[0])), ("id", "999999")])
        async with moderator.post("/admin/feedback", data=form, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].endswith("changed=1")
        assert found(await body(moderator, "/admin/feedback?lang=en&status=hidden")) == 1
        data = {"csrf_token": token, "status": "approved", "internal_note": "für Kapitel 3"}
        async with moderator.post(f"/admin/feedback/{ids[1]}", data=data, allow_redirects=False) as resp:
            assert resp.status == 303
        assert "für Kapitel 3" in await body(moderator, f"/admin/feedback/{ids[1]}")
    async with as_role(http, kz, "viewer") as viewer:
        token = await csrf(viewer, "/admin/feedback")
        async with viewer.post(f"/admin/feedback/{ids[3]}", data={"csrf_token": token, "status": "spam"}) as resp:
            assert resp.status == 403
    async with kz.db.read() as conn:
        rows = (await conn.execute(select(Feedback.id, Feedback.status, Feedback.internal_note))).all()
    assert {r.id: (r.status, r.internal_note) for r in rows} == {
        ids[0]: ("hidden", None),
        ids[1]: ("approved", "für Kapitel 3"),
        ids[2]: ("new", None),
        ids[3]: ("new", None),
    }
    audited = [
        (r.target, r.detail["old"], r.detail["new"]) for r in await audit_rows(kz) if r.action == "feedback-status"
    ]
    assert audited == [(f"feedback-{ids[0]}", "new", "hidden"), (f"feedback-{ids[1]}", "new", "approved")]


# --- in Chromium -------------------------------------------------------------------------------------------------


async def fits_a_phone(page: Any) -> bool:
    """Nothing wider than a 360 px screen (wide tables scroll inside their own box)."""
    await page.set_viewport_size({"width": 360, "height": 740})
    fits = await page.evaluate("document.documentElement.scrollWidth <= 360")
    await page.set_viewport_size({"width": 1280, "height": 800})
    return bool(fits)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_moderator_in_the_browser(page: Any, stack: Stack) -> None:
    kz = stack.kz
    await add_accounts(kz)
    reference = await voice_idea(stack, 81, wav_bytes(), JPEG)
    async with kz.db.transaction() as conn:
        resident = (await conn.execute(select(Idea.resident_id).where(Idea.reference == reference))).scalar_one()
        await conn.execute(
            insert(Feedback),
            {
                "resident_id": resident,
                "statement": "streets",
                "rating": "agree",
                "comment": "Bitte mehr Zebrastreifen",
                "media": [],
                "language": "de",
                "channel": "telegram",
                "created_at": stack.clock.now,
                "updated_at": stack.clock.now,
            },
        )
    await browser_sign_in(page, stack.http, "moderator")
    url = stack.http.make_url
    await page.goto(str(url("/admin/ideas")))
    await page.get_by_label("Suche (Nummer oder Wörter)").fill(reference)
    await page.get_by_role("button", name="Anzeigen").click()
    await page.get_by_text("Gefundene Ideen: 1").wait_for()
    assert await axe_violations(page) == []
    assert await fits_a_phone(page)
    await page.get_by_role("link", name=reference).click()
    await page.get_by_role("heading", name=f"Idee {reference}").wait_for()
    # the player loaded the voice note, the photo was decoded: both served to this session
    await page.wait_for_function("document.querySelector('audio').readyState >= 1")
    assert await page.locator("audio").get_attribute("src") == f"/admin/media/{reference}/0"
    photo = page.get_by_role("img", name="Foto 1, von der Person geschickt")
    await page.wait_for_function("document.querySelector('.media-list img').complete")
    assert await photo.evaluate("img => img.naturalWidth") == 1
    assert await page.evaluate("fetch(document.querySelector('audio').src).then(r => r.status)") == 200
    assert await axe_violations(page) == []
    assert await fits_a_phone(page)
    await page.get_by_label("Moderationsstand").select_option("approved")
    await page.get_by_label("Öffentliche Anmerkung", exact=False).fill("Danke, wir kümmern uns darum.")
    assert await page.get_by_label("Die Person benachrichtigen", exact=False).is_checked()
    await page.get_by_role("button", name="Speichern").click()
    await page.get_by_role("status").wait_for()
    assert "benachrichtigt" in (await page.get_by_role("status").text_content() or "")
    assert await axe_violations(page) == []
    await stack.settle()
    told = texts(stack.tg, 81)[-1]
    assert reference in told and "Eine Anmerkung des Teams: Danke, wir kümmern uns darum." in told

    await page.goto(str(url("/admin/feedback")))
    await page.get_by_text("Bitte mehr Zebrastreifen").wait_for()
    assert await axe_violations(page) == []
    assert await fits_a_phone(page)
    await page.get_by_role("link", name="Kommentar", exact=False).first.click()
    await page.get_by_label("Interne Notiz (nur für das Team sichtbar)").fill("Kapitel 2")
    await page.get_by_role("button", name="Speichern").click()
    await page.get_by_role("status").wait_for()
    assert await page.get_by_label("Interne Notiz (nur für das Team sichtbar)").input_value() == "Kapitel 2"
    assert await axe_violations(page) == []

    await page.goto(str(url("/admin/ideas/ZZZ-ZZZ")))
    await page.get_by_role("heading", name="Idee nicht gefunden").wait_for()
    assert await axe_violations(page) == []

    await page.goto(str(url(f"/admin/ideas/{reference}?lang=en")))  # the same page in English
    await page.get_by_role("heading", name=f"Idea {reference}").wait_for()
    assert await page.get_by_label("Moderation status").input_value() == "approved"
    assert await axe_violations(page) == []


async def test_every_moderation_route_needs_a_session(http: TestClient, kz: Kiezstimme) -> None:
    reference = await idea_by_talking(kz, "nobody-signed-in", GERMAN_IDEA)
    routes = [
        ("GET", "/admin/ideas"),
        ("POST", "/admin/ideas"),
        ("GET", f"/admin/ideas/{reference}"),
        ("POST", f"/admin/ideas/{reference}"),
        ("GET", f"/admin/media/{reference}/0"),
        ("GET", "/admin/media/feedback-1/0"),
        ("GET", "/admin/feedback"),
        ("POST", "/admin/feedback"),
        ("GET", "/admin/feedback/1"),
        ("POST", "/admin/feedback/1"),
    ]
    data = {"csrf_token": "x", "status": "spam", "reference": reference, "notify": "on"}
    for method, path in routes:
        resp = await http.request(method, path, data=data, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/admin/login", (method, path)
        resp = await http.request(method, path, headers={"Accept": "application/json"}, allow_redirects=False)
        assert resp.status == 401, (method, path)
    assert (await idea_row(kz, reference)).status == "new"


async def test_the_cli_still_sets_a_status_and_keeps_the_notes(http: TestClient, kz: Kiezstimme) -> None:
    """``ideas set-status`` (the operators' path) shares set_idea_status with the dashboard: it
    changes the status, tells the resident once, and leaves the moderators' notes alone."""
    await add_accounts(kz)
    reference = await idea_by_talking(kz, "cli-resident", GERMAN_IDEA)
    async with as_role(http, kz, "moderator") as moderator:
        token = await csrf(moderator, f"/admin/ideas/{reference}")
        data = {"csrf_token": token, "status": "new", "note": "öffentlich", "internal_note": "intern"}
        async with moderator.post(f"/admin/ideas/{reference}", data=data, allow_redirects=False) as resp:
            assert resp.status == 303
    env = {"DATABASE_URL": kz.settings.database_url, "MEDIA_DIR": str(kz.settings.media_dir), "LOG_LEVEL": "WARNING"}
    done = await asyncio.to_thread(run, ["ideas", "set-status", reference.lower(), "hidden"], env)
    assert done.returncode == 0, done.stderr
    assert "1 notice(s)" in done.stderr
    idea = await idea_row(kz, reference)
    assert (idea.status, idea.public_note, idea.internal_note) == ("hidden", "öffentlich", "intern")
    notice = [m.text for m in await kz.service.take_pending("webchat", "cli-resident")]
    assert len(notice) == 1 and reference in notice[0] and "Anmerkung des Teams" not in notice[0]


async def test_each_change_is_told_once(http: TestClient, kz: Kiezstimme) -> None:
    """Approved, hidden and approved again: three notices; saving without a change or a note: none."""
    await add_accounts(kz)
    reference = await idea_by_talking(kz, "changing", GERMAN_IDEA)
    told = []
    async with as_role(http, kz, "moderator") as moderator:
        token = await csrf(moderator, f"/admin/ideas/{reference}")
        for status in ("approved", "hidden", "approved", "approved"):
            data = {"csrf_token": token, "status": status, "note": "", "notify": "on", "internal_note": ""}
            async with moderator.post(f"/admin/ideas/{reference}", data=data, allow_redirects=False) as resp:
                assert resp.status == 303
            told.append([m.text for m in await kz.service.take_pending("webchat", "changing")])
    assert [len(t) for t in told] == [1, 1, 1, 0]
    assert "angenommen" in told[0][0] and "nicht angenommen" in told[1][0] and "angenommen" in told[2][0]
