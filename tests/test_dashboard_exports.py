"""Exports, the audit log and the accounts, as organisers use them: residents talk to the bot
through the web chat API, a viewer downloads what the CLI exports (same records, labels beside
ids, Excel-safe, no address anywhere), every download lands in the audit log; an organiser
manages accounts through the form; the pages pass axe-core in Chromium at 360 px."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from bot.app import Kiezstimme
from bot.participation.export import export_feedback, export_ideas, spreadsheet_safe
from bot.participation.reminders import set_idea_status
from bot.storage.models import AdminUser, AuditEntry
from tests.dashboard_helpers import (
    ACCOUNTS,
    add_accounts,
    as_role,
    axe_violations,
    browser_sign_in,
    csrf,
    sign_in,
)
from tests.test_cli import run

CLIENT_DE = "webchat-client-de-7f3a9c"
CLIENT_EN = "webchat-client-en-41b2d8"
IDEA_CMD = "=cmd|' /C calc'!A0 und mehr Bäume im Kiez"
IDEA_HTML = "More night buses <script>alert(1)</script> please"
CONTRACT_ROUTES = (
    "/admin/export/ideas.csv",
    "/admin/export/ideas.json",
    "/admin/export/feedback.csv",
    "/admin/export/feedback.json",
)
SHAPE_ROUTES = ("/admin/export/ideas-adhocracy4.json", "/admin/export/ideas-decidim.json")


async def chat(http: TestClient, client_id: str, lines: list[str]) -> list[dict[str, Any]]:
    """Talk to the bot like the web chat page does; the bot's replies (text and choices)."""
    replies: list[dict[str, Any]] = []
    for line in lines:
        resp = await http.post("/webchat/api/messages", json={"client_id": client_id, "text": line})
        assert resp.status == 200, await resp.text()
        replies += (await resp.json())["messages"]
    return replies


async def rate_first_statement(http: TestClient, client_id: str, replies: list[dict[str, Any]]) -> None:
    """After an idea: skip the optional questions, accept the offer of feedback, disagree with
    the first statement and comment on it."""
    for _ in range(8):
        last = replies[-1]
        if "Aussage 1 von" in last["text"]:
            answer = "2"  # I disagree
        elif "etwas dazu schreiben" in last["text"]:
            await chat(http, client_id, ["Zu teuer"])
            return
        elif "Meinung zum Entwurf" in last["text"]:
            answer = "1"
        else:
            answer = "überspringen"  # the optional questions about the resident: a skip word
        replies = await chat(http, client_id, [answer])
    raise AssertionError("the feedback dialogue was not reached")


def reference_in(replies: list[dict[str, Any]], before: str) -> str:
    return next(r["text"] for r in replies if before in r["text"]).split(before)[1][:7]


async def residents(http: TestClient) -> tuple[str, str]:
    """A German resident with a formula-like idea and a rated statement, and an English one
    whose idea holds HTML; their references."""
    de = await chat(http, CLIENT_DE, ["👋", "1", "1", "1", "6", IDEA_CMD, "8", "1", "1"])
    await rate_first_statement(http, CLIENT_DE, de)
    en = await chat(http, CLIENT_EN, ["👋", "2", "1", "1", "3", IDEA_HTML, "13", "2", "1"])
    return reference_in(de, "Ihre Nummer ist "), reference_in(en, "Your reference is ")


async def download(session: aiohttp.ClientSession, path: str) -> tuple[aiohttp.ClientResponse, str]:
    async with session.get(path, allow_redirects=False) as resp:
        body = await resp.read()
        return resp, body.decode("utf-8")


async def library_export(kz: Kiezstimme, what: str, fmt: str) -> str:
    out = io.StringIO(newline="")
    exporter = export_ideas if what == "ideas" else export_feedback
    await exporter(kz.db, kz.settings, fmt, out)
    return out.getvalue()


def cli_env(kz: Kiezstimme, tmp_path: Path) -> dict[str, str]:
    return {
        "DATABASE_URL": kz.settings.database_url,
        "MEDIA_DIR": str(tmp_path / "media"),
        "PORT": "8080",  # the base of the media links, as in the test's settings
        "LOG_LEVEL": "WARNING",
    }


async def audit_entries(kz: Kiezstimme, action: str) -> list[Any]:
    return await kz.db.run(
        lambda conn: conn.execute(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)).all(),
        write=False,
    )


# --- the doors ---------------------------------------------------------------------------------


async def test_exports_need_a_session(http: TestClient, kz: Kiezstimme) -> None:
    for path in ("/admin/export", *CONTRACT_ROUTES, *SHAPE_ROUTES, "/admin/audit", "/admin/accounts"):
        resp = await http.get(path, allow_redirects=False)
        assert resp.status == 303 and resp.headers["Location"] == "/admin/login", path
        resp = await http.get(path, allow_redirects=False, headers={"Accept": "application/json"})
        assert resp.status == 401, path


# --- the exports -------------------------------------------------------------------------------


async def test_a_viewer_downloads_the_clis_records_with_labels_and_no_address(
    http: TestClient, kz: Kiezstimme, tmp_path: Path
) -> None:
    ref_de, ref_en = await residents(http)
    await add_accounts(kz)
    async with as_role(http, kz, "viewer") as viewer:
        files = {path: await download(viewer, path) for path in (*CONTRACT_ROUTES, *SHAPE_ROUTES)}
    for path, (resp, body) in files.items():
        assert resp.status == 200, path
        kind = "csv" if path.endswith(".csv") else "json"
        assert resp.headers["Content-Type"].startswith("text/csv" if kind == "csv" else "application/json")
        stem = path.rsplit("/", 1)[1].rsplit(".", 1)[0]
        assert resp.headers["Content-Disposition"] == f'attachment; filename="kiezstimme-{stem}-2026-11-26.{kind}"'
        assert resp.headers["Cache-Control"] == "no-store"
        for secret in (CLIENT_DE, CLIENT_EN, "webchat-client"):  # the residents' chat ids
            assert secret not in body, (path, secret)

    # the same records as the library and as the command (run as an operator runs it)
    for what in ("ideas", "feedback"):
        for fmt in ("csv", "json"):
            body = files[f"/admin/export/{what}.{fmt}"][1]
            assert body == await library_export(kz, what, fmt), (what, fmt)
            target = tmp_path / f"cli-{what}.{fmt}"
            cli = run(["export", what, "--format", fmt, "--output", str(target)], cli_env(kz, tmp_path))
            assert cli.returncode == 0, cli.stderr
            assert target.read_bytes().decode("utf-8") == body, (what, fmt)  # byte for byte: BOM, CRLF

    ideas = {r["reference"]: r for r in json.loads(files["/admin/export/ideas.json"][1])}
    assert set(ideas) == {ref_de, ref_en}
    de, en = ideas[ref_de], ideas[ref_en]
    assert (de["topic"], de["topic_label"], de["district"], de["district_label"]) == (
        "housing",
        "Wohnen und öffentlicher Raum",
        "neukoelln",
        "Neukölln",
    )
    assert (en["topic"], en["topic_label"], en["district"], en["district_label"]) == (
        "administration",
        "Verwaltung und digitale Dienste",  # labels in the process's language, whatever the resident's
        None,
        None,
    )
    assert de["text"] == IDEA_CMD and de["resident"].startswith("r-") and en["language"] == "en"

    feedback = json.loads(files["/admin/export/feedback.json"][1])
    assert [(f["statement"], f["rating"], f["comment"]) for f in feedback] == [
        ("services-online", "disagree", "Zu teuer")
    ]
    assert feedback[0]["statement_label"].startswith("Jede Leistung der Verwaltung gibt es auch online")
    assert feedback[0]["rating_label"] == "Stimme nicht zu"

    # CSV: BOM, CRLF, the contract's columns first, the formula neutralised
    ideas_csv = files["/admin/export/ideas.csv"][1]
    assert ideas_csv.startswith(
        "\ufeffreference,text,topic,district,language,channel,created_at,status,media,resident,"
        "topic_label,district_label\r\n"
    )
    rows = list(csv.DictReader(io.StringIO(ideas_csv.lstrip("\ufeff"))))
    cell = next(r["text"] for r in rows if r["reference"] == ref_de)
    assert cell == "'" + IDEA_CMD and ",=cmd" not in ideas_csv
    assert next(r["district_label"] for r in rows if r["reference"] == ref_de) == "Neukölln"


async def test_the_import_shapes_carry_their_platforms_fields(http: TestClient, kz: Kiezstimme) -> None:
    ref_de, ref_en = await residents(http)
    await set_idea_status(kz, ref_de, "approved", kz.service.clock(), notify=False)
    await add_accounts(kz)
    async with as_role(http, kz, "viewer") as viewer:
        _, a4_body = await download(viewer, "/admin/export/ideas-adhocracy4.json")
        _, decidim_body = await download(viewer, "/admin/export/ideas-decidim.json")
        a4 = json.loads(a4_body)
        assert {i["reference"]: i["moderator_status"] for i in a4} == {ref_de: "CONSIDERATION", ref_en: None}
        idea = next(i for i in a4 if i["reference"] == ref_en)
        assert idea["name"] == IDEA_HTML
        assert idea["description"] == "<p>More night buses &lt;script&gt;alert(1)&lt;/script&gt; please</p>"
        assert idea["category"] == "Verwaltung und digitale Dienste" and idea["point_label"] is None
        assert idea["created"].endswith("+01:00")
        assert {"name", "description", "category", "point_label", "created", "moderator_status"} <= set(idea)

        decidim = {p["reference"]: p for p in json.loads(decidim_body)}
        proposal = decidim[ref_de]
        assert proposal["category"] == {"id": "housing", "name": {"de": "Wohnen und öffentlicher Raum"}}
        assert proposal["scope"] == {"id": "neukoelln", "name": {"de": "Neukölln"}}
        assert proposal["title"] == {"de": IDEA_CMD} and proposal["body"]["de"].startswith("<p>=cmd|&#x27;")
        assert proposal["state"] == "evaluating" and decidim[ref_en]["state"] == "not_answered"
        assert {"id", "published_at", "answer", "supports", "comments"} <= set(proposal)
        assert "resident" not in proposal and "resident" not in idea  # not even the pseudonym

        # a hidden idea is not published, so no import shape carries it
        await set_idea_status(kz, ref_en, "hidden", kz.service.clock(), notify=False)
        _, a4_body = await download(viewer, "/admin/export/ideas-adhocracy4.json")
        _, decidim_body = await download(viewer, "/admin/export/ideas-decidim.json")
        assert [i["reference"] for i in json.loads(a4_body)] == [ref_de]
        assert [p["reference"] for p in json.loads(decidim_body)] == [ref_de]


async def test_the_command_writes_the_import_shapes_for_ideas_only(
    http: TestClient, kz: Kiezstimme, tmp_path: Path
) -> None:
    ref_de, _ = await residents(http)
    env = cli_env(kz, tmp_path)
    out = run(["export", "ideas", "--format", "decidim"], env)
    assert out.returncode == 0, out.stderr
    assert ref_de in {p["reference"] for p in json.loads(out.stdout)}
    out = run(["export", "ideas", "--format", "adhocracy4"], env)
    assert out.returncode == 0 and ref_de in {i["reference"] for i in json.loads(out.stdout)}
    out = run(["export", "feedback", "--format", "decidim"], env)
    assert out.returncode == 2 and "csv or json" in out.stderr and out.stdout == ""


async def test_every_download_is_in_the_audit_log(http: TestClient, kz: Kiezstimme) -> None:
    await residents(http)
    await add_accounts(kz)
    async with as_role(http, kz, "viewer") as viewer:
        for path in (*CONTRACT_ROUTES, *SHAPE_ROUTES):
            resp, _ = await download(viewer, path)
            assert resp.status == 200
    entries = await audit_entries(kz, "export")
    assert [(e.actor, e.target) for e in entries] == [
        (ACCOUNTS["viewer"], "kiezstimme-ideas-2026-11-26.csv"),
        (ACCOUNTS["viewer"], "kiezstimme-ideas-2026-11-26.json"),
        (ACCOUNTS["viewer"], "kiezstimme-feedback-2026-11-26.csv"),
        (ACCOUNTS["viewer"], "kiezstimme-feedback-2026-11-26.json"),
        (ACCOUNTS["viewer"], "kiezstimme-ideas-adhocracy4-2026-11-26.json"),
        (ACCOUNTS["viewer"], "kiezstimme-ideas-decidim-2026-11-26.json"),
    ]
    assert entries[0].detail == {"records": 2} and entries[2].detail == {"records": 1}
    # the organiser reads it on the audit page, newest first
    async with as_role(http, kz, "organiser") as organiser:
        async with organiser.get("/admin/audit?lang=en") as resp:
            page = await resp.text()
    assert resp.status == 200
    assert page.index("kiezstimme-ideas-decidim-2026-11-26.json") < page.index("kiezstimme-ideas-2026-11-26.csv")
    assert "records: 2" in page and 'href="/admin/accounts"' in page
    assert "2026-11-26 10:00" in page  # 09:00 UTC in Europe/Berlin


def test_cells_that_start_like_a_formula_are_neutralised() -> None:
    for value in ("=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "|cmd", ";x", "\uff1d1+1", "\uff0b1", "\uff0d1"):
        assert spreadsheet_safe(value) == "'" + value, repr(value)
    for value in ("\u200b=1", "\ufeff=1", "  =1", "\u00a0@x", "\u200bhello", "\ufeffhello"):
        assert spreadsheet_safe(value) == "'" + value, repr(value)
    for value in ("Mehr Bäume", "", "1-2", "a=b", "K7Q-3MX"):
        assert spreadsheet_safe(value) == value, repr(value)


# --- accounts ----------------------------------------------------------------------------------

NEW = "new.viewer@example.org"
NEW_PASSWORD = "twelve chars and more"


async def accounts_count(kz: Kiezstimme) -> int:
    return await kz.db.run(
        lambda conn: conn.execute(select(func.count()).select_from(AdminUser)).scalar_one(), write=False
    )


async def test_an_organiser_creates_a_viewer_who_can_sign_in(http: TestClient, kz: Kiezstimme) -> None:
    await add_accounts(kz)
    async with as_role(http, kz, "organiser") as organiser:
        token = await csrf(organiser, "/admin/accounts")
        form = {"csrf_token": token, "email": NEW.upper(), "role": "viewer", "password": "too short"}
        async with organiser.post("/admin/accounts", data=form, allow_redirects=False) as resp:
            assert resp.status == 400 and "12" in await resp.text()
        assert await accounts_count(kz) == 3

        form["password"] = NEW_PASSWORD
        async with organiser.post("/admin/accounts", data=form, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/admin/accounts?done=saved"
        async with organiser.get("/admin/accounts?lang=en") as resp:
            page = await resp.text()
        assert NEW in page and "never" in page

    async with aiohttp.ClientSession(
        base_url=str(http.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as new:
        assert (await sign_in(new, NEW, NEW_PASSWORD)).status == 303
        async with new.get("/admin/export/ideas.json") as resp:
            assert resp.status == 200  # a viewer exports
        async with new.get("/admin/accounts", allow_redirects=False) as resp:
            assert resp.status == 403  # but does not manage accounts

        # the organiser makes it a moderator: its session ends
        async with as_role(http, kz, "organiser") as organiser:
            form = {"csrf_token": await csrf(organiser), "email": NEW, "role": "moderator", "password": NEW_PASSWORD}
            async with organiser.post("/admin/accounts", data=form, allow_redirects=False) as resp:
                assert resp.status == 303
        async with new.get("/admin/", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/admin/login"
        assert (await sign_in(new, NEW, NEW_PASSWORD)).status == 303

        # and then disables it: signed out, and no way back in
        async with as_role(http, kz, "organiser") as organiser:
            form = {"csrf_token": await csrf(organiser), "email": NEW}
            async with organiser.post("/admin/accounts/disable", data=form, allow_redirects=False) as resp:
                assert resp.status == 303 and resp.headers["Location"] == "/admin/accounts?done=disabled"
            async with organiser.get("/admin/accounts") as resp:
                assert NEW not in await resp.text()
        async with new.get("/admin/", allow_redirects=False) as resp:
            assert resp.status == 303
        assert (await sign_in(new, NEW, NEW_PASSWORD)).status == 401

    actions = [
        (e.actor, e.action, e.target, e.detail)
        for name in ("account-created", "account-updated", "account-disabled")
        for e in await audit_entries(kz, name)
    ]
    assert actions == [
        (ACCOUNTS["organiser"], "account-created", NEW, {"role": "viewer"}),
        (ACCOUNTS["organiser"], "account-updated", NEW, {"role": "moderator"}),
        (ACCOUNTS["organiser"], "account-disabled", NEW, {}),
    ]
    assert all(NEW_PASSWORD not in str(a) for a in actions)


async def test_an_organiser_cannot_disable_or_demote_themselves(http: TestClient, kz: Kiezstimme) -> None:
    await add_accounts(kz)
    me = ACCOUNTS["organiser"]
    async with as_role(http, kz, "organiser") as organiser:
        token = await csrf(organiser, "/admin/accounts")
        async with organiser.post("/admin/accounts/disable", data={"csrf_token": token, "email": me}) as resp:
            assert resp.status == 400
        form = {"csrf_token": token, "email": me, "role": "viewer", "password": NEW_PASSWORD}
        async with organiser.post("/admin/accounts", data=form) as resp:
            assert resp.status == 400
        async with organiser.get("/admin/accounts", allow_redirects=False) as resp:
            assert resp.status == 200  # still an organiser, still signed in
    assert await audit_entries(kz, "account-disabled") == [] and await audit_entries(kz, "account-updated") == []


async def test_only_an_organiser_manages_accounts_and_reads_the_audit_log(http: TestClient, kz: Kiezstimme) -> None:
    await add_accounts(kz)
    for role in ("viewer", "moderator"):
        async with as_role(http, kz, role) as session:
            token = await csrf(session)
            for path in ("/admin/accounts", "/admin/audit"):
                async with session.get(path, allow_redirects=False) as resp:
                    assert resp.status == 403, (role, path)
            form = {"csrf_token": token, "email": NEW, "role": "organiser", "password": NEW_PASSWORD}
            async with session.post("/admin/accounts", data=form, allow_redirects=False) as resp:
                assert resp.status == 403, role
            form = {"csrf_token": token, "email": ACCOUNTS["organiser"]}
            async with session.post("/admin/accounts/disable", data=form, allow_redirects=False) as resp:
                assert resp.status == 403, role
            async with session.get("/admin/export") as resp:
                assert resp.status == 200  # every role reads the export page
    assert await accounts_count(kz) == 3
    assert await audit_entries(kz, "account-created") == [] and await audit_entries(kz, "account-disabled") == []


async def test_a_missing_csrf_token_changes_nothing(http: TestClient, kz: Kiezstimme) -> None:
    await add_accounts(kz)
    async with as_role(http, kz, "organiser") as organiser:
        form = {"email": NEW, "role": "organiser", "password": NEW_PASSWORD}
        async with organiser.post("/admin/accounts", data=form, allow_redirects=False) as resp:
            assert resp.status == 403
        async with organiser.post("/admin/accounts/disable", data={"email": ACCOUNTS["viewer"]}) as resp:
            assert resp.status == 403
    assert await accounts_count(kz) == 3
    async with as_role(http, kz, "viewer"):
        pass  # the viewer still signs in
    assert await audit_entries(kz, "account-created") == [] and await audit_entries(kz, "account-disabled") == []


# --- ideas list --------------------------------------------------------------------------------


async def test_ideas_list_prints_references_with_labels_and_no_personal_data(
    http: TestClient, kz: Kiezstimme, tmp_path: Path
) -> None:
    ref_de, ref_en = await residents(http)
    await set_idea_status(kz, ref_en, "approved", kz.service.clock(), notify=False)
    env = cli_env(kz, tmp_path)
    out = run(["ideas", "list"], env)
    assert out.returncode == 0, out.stderr
    assert ref_de in out.stdout and ref_en in out.stdout
    assert "Neukölln" in out.stdout and "Wohnen und öffentlicher Raum" in out.stdout
    assert "<script>alert(1)</script>" in out.stdout  # plain text in a terminal, not markup
    for secret in (CLIENT_DE, CLIENT_EN, "r-"):
        assert secret not in out.stdout
    pseudonyms = {r["resident"] for r in json.loads(await library_export(kz, "ideas", "json"))}
    assert not any(p in out.stdout for p in pseudonyms)

    approved = run(["ideas", "list", "--status", "approved"], env)
    assert approved.returncode == 0 and ref_en in approved.stdout and ref_de not in approved.stdout
    found = run(["ideas", "list", "--q", "bäume"], env)
    assert found.returncode == 0 and ref_de in found.stdout and ref_en not in found.stdout
    by_reference = run(["ideas", "list", "--q", ref_en.lower()], env)
    assert ref_en in by_reference.stdout and ref_de not in by_reference.stdout
    one = run(["ideas", "list", "--limit", "1"], env)
    assert one.returncode == 0 and len(re.findall(r"[A-Z0-9]{3}-[A-Z0-9]{3}", one.stdout)) == 1


# --- in Chromium -------------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_pages_in_chromium_on_a_phone(page, http: TestClient, kz: Kiezstimme) -> None:  # type: ignore[no-untyped-def]
    await residents(http)
    await add_accounts(kz)
    await page.set_viewport_size({"width": 360, "height": 740})
    await browser_sign_in(page, http, "organiser")
    for lang, heading in (("de", "Exporte"), ("en", "Exports")):
        await page.goto(str(http.make_url(f"/admin/export?lang={lang}")))
        assert await page.locator("h1").inner_text() == heading
        assert await axe_violations(page) == []
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360

    # a download from the page: the file the contract names, with a date
    async with page.expect_download() as info:
        await page.locator('a[href="/admin/export/ideas.csv"]').click()
    download = await info.value
    assert download.suggested_filename == "kiezstimme-ideas-2026-11-26.csv"
    assert "'=cmd" in Path(await download.path()).read_text(encoding="utf-8-sig")

    await page.goto(str(http.make_url("/admin/audit?lang=de")))
    assert await page.locator("h1").inner_text() == "Protokoll"
    assert await page.get_by_text("kiezstimme-ideas-2026-11-26.csv").count() == 1
    assert await axe_violations(page) == []
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await page.get_by_role("link", name="Zugänge verwalten").click()

    await page.wait_for_url("**/admin/accounts")
    assert await page.locator("h1").inner_text() == "Zugänge"
    assert await axe_violations(page) == []
    assert await page.evaluate("document.documentElement.scrollWidth") <= 360
    await page.get_by_label("E-Mail-Adresse").fill(NEW)
    await page.get_by_label("Rolle").select_option("viewer")
    await page.get_by_label("Passwort").fill(NEW_PASSWORD)
    await page.get_by_role("button", name="Zugang speichern").click()
    await page.wait_for_url("**/admin/accounts?done=saved")
    assert await page.get_by_role("status").inner_text() == (
        "Der Zugang ist gespeichert. Falls es ihn schon gab, sind seine Sitzungen beendet."
    )
    assert await page.get_by_role("cell", name=NEW, exact=True).count() == 1
    assert await axe_violations(page) == []

    await page.goto(str(http.make_url("/admin/accounts?lang=en")))
    assert await page.locator("h1").inner_text() == "Accounts"
    assert await axe_violations(page) == []
