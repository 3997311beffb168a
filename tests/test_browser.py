"""The web chat page in real headless Chromium (Debian's package, driven by
Playwright): a resident completes the dialogue with keyboard and buttons."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.app import Kiezstimme
from bot.storage.models import Idea

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("KIEZSTIMME_REQUIRE_BROWSER") == "1"
IDEA = "Mehr Bäume und Schatten auf dem Hermannplatz"

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest_asyncio.fixture
async def page() -> AsyncIterator[object]:
    if CHROMIUM is None:
        if REQUIRED:
            pytest.fail("chromium is not installed but KIEZSTIMME_REQUIRE_BROWSER=1", pytrace=False)
        pytest.skip("chromium not found on PATH (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        context = await browser.new_context(locale="de-DE")
        yield await context.new_page()
        await browser.close()


async def bot_messages(page) -> list[str]:  # type: ignore[no-untyped-def]
    return await page.locator(".msg.bot").evaluate_all("els => els.map(e => e.firstChild.textContent)")


async def test_resident_submits_an_idea_in_the_browser(page, http: TestClient, kz: Kiezstimme) -> None:  # type: ignore[no-untyped-def]
    url = str(http.make_url("/"))
    await page.goto(url)
    assert await page.get_attribute("html", "lang") == "de"
    # the text box has a visible label
    assert await page.get_by_label("Ihre Nachricht").count() == 1

    await page.get_by_role("button", name="Chat beginnen").click()
    await page.get_by_role("button", name="Ja, einverstanden").wait_for()
    # keyboard only: focus lands on the first choice; Enter presses it
    await page.keyboard.press("Enter")
    await page.get_by_role("button", name="Eine Idee einreichen").wait_for()
    await page.get_by_role("button", name="Eine Idee einreichen").click()
    await page.get_by_role("button", name="Wohnen und öffentlicher Raum").click()
    await page.get_by_text("Bitte beschreiben Sie Ihre Idee").wait_for()
    await page.get_by_label("Ihre Nachricht").fill(IDEA)
    await page.keyboard.press("Enter")
    await page.get_by_role("button", name="Neukölln").click()
    await page.get_by_role("button", name="Ja, gerne").click()
    await page.get_by_role("button", name="Absenden").click()
    await page.get_by_text("Ihre Nummer ist").wait_for()

    # old buttons cannot be pressed twice
    assert await page.get_by_role("button", name="Neukölln").is_disabled()
    async with kz.db.read() as conn:
        idea = (await conn.execute(select(Idea.text, Idea.district, Idea.language))).one()
    assert tuple(idea) == (IDEA, "neukoelln", "de")


async def test_language_switch_sets_lang_and_escapes_html(page, http: TestClient) -> None:  # type: ignore[no-untyped-def]
    await page.goto(str(http.make_url("/?lang=en")))
    await page.get_by_label("Your message").fill("<img src=x onerror=window.pwned=1>")
    await page.keyboard.press("Enter")
    await page.get_by_role("button", name="Yes, I agree").wait_for()
    assert await page.evaluate("window.pwned === undefined")
    assert await page.locator(".msg.me").first.text_content() == "<img src=x onerror=window.pwned=1>"
    await page.get_by_role("button", name="🌐 Change language").click()
    await page.get_by_role("button", name="Deutsch").last.click()
    await page.get_by_role("button", name="Ja, einverstanden").wait_for()
    assert await page.get_attribute("html", "lang") == "de"
    assert await page.locator(".msg.bot").last.get_attribute("dir") == "ltr"
