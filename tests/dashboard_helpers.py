"""Shared by the dashboard's tests: accounts, signing in (over HTTP and in Chromium), CSRF
tokens, and axe-core (from npm: ``npm ci`` puts it in ``node_modules/``)."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher

from bot.app import Kiezstimme
from bot.storage.accounts import AccountRepository

PASSWORD = "correct horse battery staple"
ACCOUNTS = {
    "viewer": "viewer@example.org",
    "moderator": "moderator@example.org",
    "organiser": "organiser@example.org",
}
AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def add_accounts(kz: Kiezstimme) -> None:
    """One account per role (see ACCOUNTS), all with PASSWORD."""
    repo = AccountRepository(kz.db)
    hashed = PasswordHasher().hash(PASSWORD)
    for role, email in ACCOUNTS.items():
        await repo.save_user(email, hashed, role, kz.service.clock())


def csrf_from(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "no csrf_token on the page"
    return found.group(1)


async def sign_in(session: aiohttp.ClientSession | TestClient, email: str, password: str = PASSWORD) -> Any:
    """Sign in through the form; the response of the POST (not followed)."""
    async with session.get("/admin/login") as resp:
        token = csrf_from(await resp.text())
    return await session.post(
        "/admin/login",
        data={"email": email, "password": password, "csrf_token": token},
        allow_redirects=False,
    )


@contextlib.asynccontextmanager
async def as_role(http: TestClient, kz: Kiezstimme, role: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A browser-like HTTP session (its own cookies) signed in with ``role``'s account.
    Needs :func:`add_accounts` first."""
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
    async with aiohttp.ClientSession(base_url=str(http.make_url("/")), cookie_jar=jar) as session:
        resp = await sign_in(session, ACCOUNTS[role])
        assert resp.status == 303, await resp.text()
        yield session


async def csrf(session: aiohttp.ClientSession, path: str = "/admin/") -> str:
    """The session's CSRF token, from a page of the session."""
    async with session.get(path) as resp:
        return csrf_from(await resp.text())


async def browser_sign_in(page: Any, http: TestClient, role: str, lang: str = "de") -> None:
    """Sign in in Chromium through the form (German UI unless ``lang``)."""
    await page.goto(str(http.make_url(f"/admin/login?lang={lang}")))
    await page.locator('input[name="email"]').fill(ACCOUNTS[role])
    await page.locator('input[name="password"]').fill(PASSWORD)
    await page.locator('input[name="password"]').press("Enter")
    await page.wait_for_url("**/admin/**")


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.x A/AA violations on the page as it is now."""
    if not AXE.exists():
        if os.environ.get("KIEZSTIMME_REQUIRE_BROWSER") == "1":
            pytest.fail("axe-core is missing: run npm ci", pytrace=False)
        pytest.skip("axe-core not installed (npm ci)")
    # evaluated through the DevTools protocol: the page's CSP (no inline scripts) stays as it is
    await page.evaluate(AXE.read_text(encoding="utf-8") + "\n;true")
    result = await page.evaluate(
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa']}})"
    )
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
    ]
