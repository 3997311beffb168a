"""The web chat page in real headless Chromium (Debian's package, driven by
Playwright): a resident completes the dialogue with keyboard and buttons."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from bot.app import Kiezstimme
from bot.conversation import texts as M
from bot.delivery.outbox import Audience
from bot.participation import broadcasts
from bot.storage.models import Idea

IDEA = "Mehr Bäume und Schatten auf dem Hermannplatz"

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


async def bot_messages(page) -> list[str]:  # type: ignore[no-untyped-def]
    return await page.locator(".msg.bot").evaluate_all("els => els.map(e => e.firstChild.textContent)")


def conversation(page):  # type: ignore[no-untyped-def]
    """The conversation as shown (the live region repeats the newest bot messages)."""
    return page.locator("#log")


async def focused_text(page) -> str:  # type: ignore[no-untyped-def]
    return await page.evaluate("document.activeElement.textContent")


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
    # after a choice the focus goes on to the next question's first choice
    assert await focused_text(page) == "Eine Idee einreichen"
    await page.get_by_role("button", name="Eine Idee einreichen").click()
    await page.get_by_role("button", name="Wohnen und öffentlicher Raum").click()
    await conversation(page).get_by_text("Bitte beschreiben Sie Ihre Idee").wait_for()
    await page.get_by_label("Ihre Nachricht").fill(IDEA)
    await page.keyboard.press("Enter")
    await page.get_by_role("button", name="Neukölln").click()
    await page.get_by_role("button", name="Ja, gerne").click()
    await page.get_by_role("button", name="Absenden").click()
    await conversation(page).get_by_text("Ihre Nummer ist").wait_for()

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
    await page.get_by_role("button", name="Change language", exact=True).click()
    await page.get_by_role("button", name="Deutsch").last.click()
    await page.get_by_role("button", name="Ja, einverstanden").wait_for()
    assert await page.get_attribute("html", "lang") == "de"
    assert await page.locator(".msg.bot").last.get_attribute("dir") == "ltr"


LAST_CHOICE = "document.activeElement === document.querySelector('#log .msg:last-child .choices button')"


async def test_history_survives_a_reload_and_the_chat_goes_on(page, http: TestClient) -> None:  # type: ignore[no-untyped-def]
    url = str(http.make_url("/?lang=de"))
    await page.goto(url)
    await page.get_by_role("button", name="Chat beginnen").click()
    await page.get_by_role("button", name="Ja, einverstanden").wait_for()
    await page.keyboard.press("Enter")
    await page.get_by_role("button", name="Eine Idee einreichen").wait_for()
    before = await bot_messages(page)
    mine = await page.locator(".msg.me").all_text_contents()
    assert len(before) >= 2 and mine == ["Chat beginnen", "Ja, einverstanden"]
    assert before[-1] in await page.locator("#announcer").inner_text()  # it was announced

    await page.reload()
    await page.get_by_role("button", name="Eine Idee einreichen").wait_for()
    assert await bot_messages(page) == before
    assert await page.locator(".msg.me").all_text_contents() == mine
    assert await page.locator("#start").is_hidden()
    # restored, not announced again
    assert await page.locator("#announcer").inner_text() == ""
    # only the last question's choices can be pressed; the answer given earlier stays marked
    consent = page.get_by_role("button", name="Ja, einverstanden")
    assert await consent.is_disabled() and "chosen" in (await consent.get_attribute("class") or "")
    assert await page.get_by_role("button", name="Nein").first.is_disabled()
    # the conversation goes on where it was (a new chat would ask for consent again), by keyboard
    await page.get_by_role("button", name="Eine Idee einreichen").focus()
    await page.keyboard.press("Enter")
    await page.get_by_role("button", name="Wohnen und öffentlicher Raum").wait_for()
    assert await page.evaluate(LAST_CHOICE)
    assert await page.get_by_role("button", name="Eine Idee einreichen").is_disabled()

    # kept for this tab only: not in localStorage, and a new tab (the next person) starts afresh
    assert await page.evaluate("localStorage.length") == 0
    assert "Eine Idee einreichen" in await page.evaluate("sessionStorage.getItem('kiezstimme.chat')")
    other = await page.context.new_page()
    await other.goto(url)
    assert await other.locator(".msg").count() == 0 and await other.locator("#start").is_visible()
    await other.get_by_label("Ihre Nachricht").fill("Hallo")
    await other.keyboard.press("Enter")
    await other.get_by_role("button", name="Ja, einverstanden").wait_for()  # asked for consent: a new resident
    assert await other.get_by_role("button", name="Ja, einverstanden").is_enabled()


async def test_the_page_follows_the_residents_language_and_each_bubble_keeps_its_own(  # type: ignore[no-untyped-def]
    page, http: TestClient, kz: Kiezstimme
) -> None:
    ar = kz.catalogs.get("ar")
    await page.goto(str(http.make_url("/?lang=de")))
    await page.get_by_label("Ihre Nachricht").fill("Hallo")
    await page.keyboard.press("Enter")
    await page.get_by_role("button", name="Ja, einverstanden").wait_for()
    await page.keyboard.press("Enter")  # consent, so that announcements reach this chat
    await page.get_by_role("button", name="Eine Idee einreichen").wait_for()
    await page.get_by_label("Ihre Nachricht").fill("LANGUAGE")
    await page.keyboard.press("Enter")
    await page.get_by_role("button", name="العربية").wait_for()
    assert await page.get_attribute("html", "dir") == "ltr"
    await page.get_by_label("Ihre Nachricht").fill("4")  # العربية
    await page.keyboard.press("Enter")

    async def arabic_page() -> None:
        await page.locator('html[lang="ar"][dir="rtl"]').wait_for(state="attached")
        assert await page.title() == ar.gettext(M.WEB_TITLE)
        assert await page.locator("#intro").text_content() == ar.gettext(M.WEB_INTRO)
        assert await page.get_by_label(ar.gettext(M.WEB_INPUT_LABEL), exact=True).count() == 1
        assert await page.get_by_role("button", name=ar.gettext(M.WEB_SEND), exact=True).count() == 1
        assert await page.get_by_role("button", name=ar.gettext(M.WEB_LANGUAGE), exact=True).count() == 1
        assert await page.get_by_label("Ihre Nachricht").count() == 0

    await arabic_page()
    assert await page.locator('#log .msg.bot[lang="ar"][dir="rtl"]').count() >= 1
    await page.reload()  # the page comes as ?lang=de; the chat knows better
    await arabic_page()

    text = "Heute Abend: Kiezversammlung im Rathaus Neukölln"
    audience = Audience(opted_in_only=False)
    assert await broadcasts.send(
        kz, broadcasts.broadcast_key({"de": text}, "de", audience), {"de": text}, "de", audience
    )
    await page.locator("#text").focus()
    await page.evaluate("window.dispatchEvent(new Event('online'))")  # back online: it asks at once
    bubble = conversation(page).locator(".msg.bot", has_text=text)
    await bubble.wait_for()
    assert (await bubble.get_attribute("lang"), await bubble.get_attribute("dir")) == ("de", "ltr")
    assert (await page.get_attribute("html", "lang"), await page.get_attribute("html", "dir")) == ("ar", "rtl")
    assert await page.locator("#intro").text_content() == ar.gettext(M.WEB_INTRO)
    # announced, in its language, without taking the focus from the text box
    live = page.locator('[aria-live="polite"]')
    assert await live.count() == 1 and await live.get_attribute("role") == "log"
    said = live.locator("p", has_text=text)
    assert await said.count() == 1 and await said.get_attribute("lang") == "de"
    assert await page.evaluate("document.activeElement.id") == "text"


async def test_a_message_that_could_not_be_sent_can_be_sent_again(page, http: TestClient) -> None:  # type: ignore[no-untyped-def]
    await page.goto(str(http.make_url("/?lang=de")))

    async def offline(route) -> None:  # type: ignore[no-untyped-def]
        await route.abort("internetdisconnected")

    await page.route("**/webchat/api/messages*", offline)
    await page.get_by_label("Ihre Nachricht").fill("Hallo")
    await page.keyboard.press("Enter")
    await page.get_by_role("alert").wait_for()
    # not shown as sent; the text is back in the box, which has the focus
    assert await page.locator(".msg.me").count() == 0
    assert await page.get_by_label("Ihre Nachricht").input_value() == "Hallo"
    assert await page.evaluate("document.activeElement.id") == "text"

    await page.unroute("**/webchat/api/messages*", offline)
    await page.keyboard.press("Enter")
    await page.get_by_role("button", name="Ja, einverstanden").wait_for()
    assert await page.locator("#error").is_hidden()
    assert await page.locator(".msg.me").all_text_contents() == ["Hallo"]

    # a choice that fails stays pressable (and keeps the focus)
    await page.route("**/webchat/api/messages*", offline)
    await page.keyboard.press("Enter")
    await page.get_by_role("alert").wait_for()
    assert await page.locator(".msg.me").all_text_contents() == ["Hallo"]
    assert await focused_text(page) == "Ja, einverstanden"
    await page.unroute("**/webchat/api/messages*", offline)
    await page.keyboard.press("Enter")
    await page.get_by_role("button", name="Eine Idee einreichen").wait_for()


async def test_targets_are_large_enough_and_the_focus_is_visible(page, http: TestClient) -> None:  # type: ignore[no-untyped-def]
    await page.set_viewport_size({"width": 360, "height": 640})  # a small phone
    await page.goto(str(http.make_url("/?lang=de")))
    await page.get_by_role("button", name="Chat beginnen").click()
    await page.get_by_role("button", name="Ja, einverstanden").wait_for()
    sizes = await page.locator("button:visible").evaluate_all(
        "els => els.map(e => { const r = e.getBoundingClientRect(); return [e.textContent, r.width, r.height]; })"
    )
    assert len(sizes) >= 3 and all(w >= 24 and h >= 24 for _, w, h in sizes), sizes
    await page.keyboard.press("Tab")
    outline = await page.evaluate(
        "(() => { const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth]; })()"
    )
    assert outline[0] != "none" and float(outline[1].removesuffix("px")) >= 2, outline
    # the composer stays in view however long the conversation gets
    box = await page.get_by_label("Ihre Nachricht").bounding_box()
    assert box is not None and box["y"] + box["height"] <= 640


async def test_after_delete_the_tab_forgets_the_conversation(page, http: TestClient) -> None:  # type: ignore[no-untyped-def]
    await page.goto(str(http.make_url("/?lang=de")))
    await page.get_by_label("Ihre Nachricht").fill(IDEA)
    await page.keyboard.press("Enter")
    await page.get_by_role("button", name="Ja, einverstanden").wait_for()
    await page.keyboard.press("Enter")
    await conversation(page).get_by_text("Das klingt nach einer Idee").wait_for()  # kept from the first message
    first_id = await page.evaluate("JSON.parse(sessionStorage.getItem('kiezstimme.chat')).clientId")
    await page.get_by_label("Ihre Nachricht").fill("LÖSCHEN")
    await page.keyboard.press("Enter")
    await page.get_by_role("button", name="Ja, alles löschen").wait_for()
    assert await focused_text(page) == "Ja, alles löschen"
    await page.keyboard.press("Enter")
    await conversation(page).get_by_text("Alle Ihre Daten sind gelöscht").wait_for()
    saved = await page.evaluate("sessionStorage.getItem('kiezstimme.chat')")
    assert IDEA not in saved and "LÖSCHEN" not in saved
    assert await page.locator(".msg").count() == 1  # only the goodbye
    assert await page.evaluate("JSON.parse(sessionStorage.getItem('kiezstimme.chat')).clientId") != first_id
    await page.reload()
    assert await page.locator(".msg").count() == 1 and await page.locator("#start").is_visible()


async def test_the_chat_page_passes_axe_core(page, http: TestClient) -> None:  # type: ignore[no-untyped-def]
    from tests.dashboard_helpers import axe_violations

    await page.goto(str(http.make_url("/?lang=ar")))  # right to left
    assert await page.get_attribute("html", "dir") == "rtl"
    assert await axe_violations(page) == []
    await page.goto(str(http.make_url("/?lang=de")))
    assert await axe_violations(page) == []
    await page.get_by_role("button", name="Chat beginnen").click()
    await page.get_by_role("button", name="Ja, einverstanden").wait_for()
    assert await axe_violations(page) == []  # with a conversation and its choices
