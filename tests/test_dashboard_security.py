"""The dashboard's doors: every /admin route needs a session, every state-changing POST a CSRF
token of the same session, roles are checked on the server, sign-in is throttled, sign-out ends
the session on the server, and the accounts' commands work as an operator runs them."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from pydantic import SecretStr
from sqlalchemy import select

from bot.app import Kiezstimme
from bot.storage.models import AdminSession, AdminUser, AuditEntry
from tests.dashboard_helpers import ACCOUNTS, PASSWORD, add_accounts, as_role, axe_violations, csrf, csrf_from, sign_in
from tests.test_cli import run

PARAM = re.compile(r"\{[^}]+\}")
SAMPLE = {"reference": "K7QX2MA", "owner": "K7QX2MA", "id": "1", "index": "0", "kind": "telegram"}


def _sample(match: re.Match[str]) -> str:
    """A value for a route parameter (the router's formatter names them without their patterns)."""
    return SAMPLE.get(match.group(0)[1:-1], "1")


def admin_routes(http: TestClient) -> list[tuple[str, str]]:
    """(method, path) of every dashboard route, parameters filled with sample values."""
    out = []
    for route in http.server.app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or ""
        if not path.startswith("/admin") or route.method == "HEAD":
            continue
        path = PARAM.sub(_sample, path)
        out.append((route.method, path))
    return sorted(set(out))


def jar_client(http: TestClient) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(base_url=str(http.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True))


async def test_every_admin_route_needs_a_session(http: TestClient, kz: Kiezstimme) -> None:
    routes = admin_routes(http)
    assert ("GET", "/admin/ideas") in routes and ("POST", "/admin/logout") in routes, routes
    for method, path in routes:
        if path.startswith("/admin/login") or path == "/admin":  # /admin only redirects to /admin/
            continue
        resp = await http.request(method, path, allow_redirects=False, data={"csrf_token": "x"})
        assert resp.status == 303 and resp.headers["Location"] == "/admin/login", (method, path, resp.status)
        resp = await http.request(method, path, allow_redirects=False, headers={"Accept": "application/json"})
        assert resp.status == 401, (method, path, resp.status)


async def test_every_post_needs_the_sessions_own_csrf_token(http: TestClient, kz: Kiezstimme) -> None:
    await add_accounts(kz)
    posts = [p for m, p in admin_routes(http) if m == "POST" and not p.startswith("/admin/login")]
    assert posts
    async with as_role(http, kz, "organiser") as ana, as_role(http, kz, "organiser") as other:
        foreign = await csrf(other)
        before = await _audit_count(kz)
        for path in posts:
            for data in ({}, {"csrf_token": ""}, {"csrf_token": "forged"}, {"csrf_token": foreign}):
                async with ana.post(path, data=data, allow_redirects=False) as resp:
                    assert resp.status == 403, (path, data, resp.status)
        assert await _audit_count(kz) == before  # nothing happened
        async with ana.get("/admin/") as resp:  # still signed in: a refused POST does not sign out
            assert resp.status == 200


async def _audit_count(kz: Kiezstimme) -> int:
    return len(await kz.db.run(lambda conn: conn.execute(select(AuditEntry.id)).all(), write=False))


async def test_sign_in_sets_a_safe_cookie_and_sign_out_ends_the_session(http: TestClient, kz: Kiezstimme) -> None:
    await add_accounts(kz)
    async with jar_client(http) as session:
        resp = await sign_in(session, ACCOUNTS["viewer"], "wrong password entirely")
        assert resp.status == 401 and "kz_admin" not in resp.cookies
        assert "falsch" in await resp.text()  # said so (German UI by default)

        resp = await sign_in(session, ACCOUNTS["viewer"].upper())  # e-mail in any case
        assert resp.status == 303 and resp.headers["Location"] == "/admin/"
        cookie = resp.cookies["kz_admin"]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/admin"
        token = cookie.value.partition(".")[0]
        stored = await kz.db.run(lambda conn: conn.execute(select(AdminSession.id)).scalars().all(), write=False)
        assert len(stored) == 1 and token not in stored[0]  # only a hash of the token is kept

        async with session.get("/admin/") as page:
            assert page.status == 200 and ACCOUNTS["viewer"] in await page.text()
            token_csrf = csrf_from(await page.text())
        async with session.post("/admin/logout", data={"csrf_token": token_csrf}, allow_redirects=False) as out:
            assert out.status == 303 and out.headers["Location"] == "/admin/login"
        assert await kz.db.run(lambda conn: conn.execute(select(AdminSession.id)).all(), write=False) == []

    # the old cookie, replayed, no longer works
    async with jar_client(http) as replay:
        async with replay.get("/admin/", headers={"Cookie": f"kz_admin={cookie.value}"}, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/admin/login"


async def test_a_tampered_or_expired_cookie_is_no_session(http: TestClient, kz: Kiezstimme, clock) -> None:  # type: ignore[no-untyped-def]
    await add_accounts(kz)
    async with jar_client(http) as session:
        resp = await sign_in(session, ACCOUNTS["organiser"])
        value = resp.cookies["kz_admin"].value
    token, _, mac = value.partition(".")
    for forged in (token, f"{token}.{mac[:-2]}xx", f"{token[:-1]}A.{mac}", "", "." * 300):
        r = await http.get("/admin/", headers={"Cookie": f"kz_admin={forged}"}, allow_redirects=False)
        assert r.status == 303, forged
    r = await http.get("/admin/", headers={"Cookie": f"kz_admin={value}"}, allow_redirects=False)
    assert r.status == 200
    clock.advance(hours=13)  # past the session's lifetime
    r = await http.get("/admin/", headers={"Cookie": f"kz_admin={value}"}, allow_redirects=False)
    assert r.status == 303


async def test_sign_in_is_throttled(http: TestClient, kz: Kiezstimme, clock) -> None:  # type: ignore[no-untyped-def]
    await add_accounts(kz)
    async with jar_client(http) as session:
        for _ in range(5):
            assert (await sign_in(session, ACCOUNTS["moderator"], "guess guess guess")).status == 401
        # now even the right password waits, and is told so
        resp = await sign_in(session, ACCOUNTS["moderator"])
        assert resp.status == 429 and "kz_admin" not in resp.cookies
        assert int(resp.headers["Retry-After"]) > 0 and "15" in await resp.text()
        clock.advance(minutes=16)
        assert (await sign_in(session, ACCOUNTS["moderator"])).status == 303


async def test_the_sign_in_form_has_its_own_csrf_token(http: TestClient, kz: Kiezstimme) -> None:
    await add_accounts(kz)
    async with jar_client(http) as session:
        resp = await session.post(
            "/admin/login", data={"email": ACCOUNTS["viewer"], "password": PASSWORD}, allow_redirects=False
        )
        assert resp.status == 403 and "kz_admin" not in resp.cookies


async def test_roles_are_enforced_on_the_server(http: TestClient, kz: Kiezstimme) -> None:
    await add_accounts(kz)
    async with as_role(http, kz, "viewer") as viewer:
        for path in ("/admin/broadcasts/new", "/admin/accounts", "/admin/audit"):
            async with viewer.get(path, allow_redirects=False) as resp:
                assert resp.status == 403, path
        token = await csrf(viewer)
        async with viewer.post("/admin/broadcasts", data={"csrf_token": token, "text-de": "x"}) as resp:
            assert resp.status == 403
    async with as_role(http, kz, "moderator") as moderator:
        async with moderator.get("/admin/broadcasts/new", allow_redirects=False) as resp:
            assert resp.status == 403


async def test_pages_carry_a_strict_policy(http: TestClient, kz: Kiezstimme) -> None:
    await add_accounts(kz)
    async with as_role(http, kz, "organiser") as ana:
        async with ana.get("/admin/") as resp:
            policy = resp.headers["Content-Security-Policy"]
            assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy
            assert resp.headers["Cache-Control"] == "no-store" and resp.headers["X-Frame-Options"] == "DENY"


# --- the accounts' commands, as an operator runs them -------------------------------------


@pytest.fixture
def env(database_url: str, tmp_path: Path, db: object) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "MEDIA_DIR": str(tmp_path / "media"), "LOG_LEVEL": "WARNING"}


def test_admin_create_user_and_list_users(env: dict[str, str], kz: Kiezstimme) -> None:
    made = run(["admin", "create-user", "Ana@Example.org", "--role", "moderator"], env, "a long passphrase here\n")
    assert made.returncode == 0, made.stderr
    assert "created as moderator" in made.stderr and "passphrase" not in made.stderr + made.stdout
    again = run(["admin", "create-user", "ana@example.org", "--role", "organiser"], env, "another passphrase!\n")
    assert again.returncode == 0 and "updated as organiser" in again.stderr
    short = run(["admin", "create-user", "bo@example.org", "--role", "viewer"], env, "short\n")
    assert short.returncode == 2 and "12 characters" in short.stderr
    bad = run(["admin", "create-user", "not-an-address", "--role", "viewer"], env, "a long passphrase here\n")
    assert bad.returncode == 2
    listed = run(["admin", "list-users"], env)
    assert listed.returncode == 0 and "ana@example.org" in listed.stdout and "organiser" in listed.stdout
    assert "bo@example.org" not in listed.stdout and "never" in listed.stdout


async def test_the_password_is_stored_only_as_an_argon2_hash(
    env: dict[str, str], kz: Kiezstimme, http: TestClient
) -> None:
    made = run(["admin", "create-user", "cy@example.org", "--role", "viewer"], env, "a long passphrase here\n")
    assert made.returncode == 0, made.stderr
    stored = await kz.db.run(
        lambda conn: conn.execute(select(AdminUser.password_hash).where(AdminUser.email == "cy@example.org")).scalar(),
        write=False,
    )
    assert stored.startswith("$argon2id$") and "passphrase" not in stored
    async with jar_client(http) as session:
        assert (await sign_in(session, "cy@example.org", "a long passphrase here")).status == 303


async def test_the_language_switch_keeps_the_page_and_its_filters(http: TestClient, kz: Kiezstimme) -> None:
    await add_accounts(kz)
    async with as_role(http, kz, "viewer") as viewer:
        async with viewer.get("/admin/ideas?status=new&q=B%C3%A4ume") as resp:
            html = await resp.text()
        assert 'href="?status=new&amp;q=B%C3%A4ume&amp;lang=en"' in html and '<html lang="de">' in html
        async with viewer.get("/admin/ideas?status=new&lang=en") as resp:
            html = await resp.text()
        assert 'href="?status=new&amp;lang=de"' in html and '<html lang="en">' in html


# --- in Chromium ----------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_signing_in_and_out_in_the_browser(page, http: TestClient, kz: Kiezstimme) -> None:  # type: ignore[no-untyped-def]
    await add_accounts(kz)
    await page.set_viewport_size({"width": 360, "height": 740})
    await page.goto(str(http.make_url("/admin/ideas")))  # not signed in: to the sign-in page
    assert page.url.endswith("/admin/login")
    assert await page.get_attribute("html", "lang") == "de"  # the browser's language (de-DE)
    assert await axe_violations(page) == []
    # keyboard only, a wrong password first: told so, in an alert, the e-mail kept
    await page.get_by_label("E-Mail-Adresse").fill(ACCOUNTS["moderator"])
    await page.get_by_label("Passwort").fill("not the password at all")
    await page.keyboard.press("Enter")
    await page.get_by_role("alert").wait_for()
    assert "falsch" in await page.get_by_role("alert").inner_text()
    assert await page.get_by_label("E-Mail-Adresse").input_value() == ACCOUNTS["moderator"]
    assert await axe_violations(page) == []
    await page.get_by_label("Passwort").fill(PASSWORD)
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/admin/")
    assert await page.get_by_role("heading", level=1).inner_text() == "Übersicht"
    # a moderator's navigation has no broadcasts; the page fits a phone
    nav = await page.get_by_role("navigation").inner_text()
    assert "Ideen" in nav and "Rundsendungen" not in nav
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert await axe_violations(page) == []
    await page.get_by_role("link", name="English").click()
    assert await page.get_by_role("heading", level=1).inner_text() == "Dashboard"
    assert await axe_violations(page) == []
    # the cookie is not readable by scripts
    assert "kz_admin" not in await page.evaluate("document.cookie")
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/admin/login")
    await page.goto(str(http.make_url("/admin/")))
    assert page.url.endswith("/admin/login")


# --- the secret key ---------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_embedded_default_generates_its_secret_key_once(db: object, database_url: str, tmp_path: Path) -> None:
    from bot.app import build
    from bot.web.admin.core import SECRET_FILE, resolve_secret_key
    from tests.conftest import make_settings

    first = resolve_secret_key(build(make_settings(database_url, tmp_path)))
    path = tmp_path / SECRET_FILE  # next to the database file, in data/ on the default
    assert path.exists() and path.stat().st_mode & 0o777 == 0o600
    assert resolve_secret_key(build(make_settings(database_url, tmp_path))) == first  # kept across restarts
    given = resolve_secret_key(build(make_settings(database_url, tmp_path, secret_key=SecretStr("from-the-env"))))
    assert given == b"from-the-env"


@pytest.mark.postgres
def test_on_postgresql_the_secret_key_is_derived_from_the_data_key(tmp_path: Path) -> None:
    from bot.app import build
    from bot.web.admin.core import resolve_secret_key
    from tests.conftest import TEST_DATA_KEY, make_settings, postgres_url

    kz = build(make_settings(postgres_url(), tmp_path))
    derived = resolve_secret_key(kz)
    assert len(derived) == 32 and derived != TEST_DATA_KEY.encode()
    assert resolve_secret_key(build(make_settings(postgres_url(), tmp_path))) == derived  # every process the same
    assert not list(tmp_path.glob("*.key"))  # nothing written
