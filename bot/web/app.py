"""The web process: health, the web chat page and its API (webhooks and the
dashboard join here as their issues land)."""

from __future__ import annotations

import html
import logging
import uuid
from pathlib import Path
from string import Template
from typing import Any

from aiohttp import web

from bot.app import Kiezstimme
from bot.conversation import texts as M
from bot.conversation.i18n import Translator
from bot.storage.residents import ResidentRepository
from bot.values import Rejected
from bot.web import guards

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
APP_KEY = web.AppKey("kiezstimme", Kiezstimme)
NEW_CLIENTS = web.AppKey("new-webchat-clients", guards.NewClientBudget)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


@web.middleware
async def errors(request: web.Request, handler):
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:  # noqa: BLE001 - the log has the trace, the client a plain 500
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "internal error")


async def healthz(request: web.Request) -> web.Response:
    ok = await request.app[APP_KEY].db.healthy()
    return web.json_response({"status": "ok" if ok else "unavailable"}, status=200 if ok else 503)


def _accepted_languages(header: str) -> list[str]:
    """Accept-Language tags, best first."""
    weighted = []
    for i, part in enumerate(header.split(",")):
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            weight = 0.0
        if tag and tag != "*":
            weighted.append((-weight, i, tag.strip()))
    return [tag for _, _, tag in sorted(weighted)]


def page_language(kz: Kiezstimme, request: web.Request) -> str | None:
    """The language the resident asked for (?lang=) or their browser prefers, if we have it."""
    wanted = [request.query.get("lang", "")] + _accepted_languages(request.headers.get("Accept-Language", ""))
    for tag in wanted:
        code = kz.engine.supported_language(tag)
        if code:
            return code
    return None


async def metrics(request: web.Request) -> web.Response:
    kz = request.app[APP_KEY]
    refused = guards.metrics_refusal(request, kz.settings.metrics_token)  # 404 without METRICS_TOKEN
    if refused is not None:
        return refused
    await kz.refresh_gauges()
    body, content_type = kz.metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


# The page's own texts (WEB_* in texts.py), by the key the page and the API use.
UI_TEXTS = {
    "title": M.WEB_TITLE,
    "intro": M.WEB_INTRO,
    "start": M.WEB_START,
    "input_label": M.WEB_INPUT_LABEL,
    "send": M.WEB_SEND,
    "language": M.WEB_LANGUAGE,
    "error": M.WEB_ERROR,
}
MAX_TAG = 35  # the longest language tag we take from a client


def ui_texts(tr: Translator) -> dict[str, str]:
    """The web chat page's texts in the translator's language."""
    return {key: tr.gettext(msgid) for key, msgid in UI_TEXTS.items()}


async def index(request: web.Request) -> web.StreamResponse:
    kz = request.app[APP_KEY]
    hint = page_language(kz, request)
    tr = kz.catalogs.get(hint or kz.flows.default_language.code)
    values = {k: html.escape(v) for k, v in ui_texts(tr).items()}
    values["lang"] = html.escape(hint or "", quote=True)
    values["dir"] = tr.language.direction
    values["ui_lang"] = html.escape(tr.language.code, quote=True)
    page = Template((STATIC / "index.html").read_text(encoding="utf-8")).safe_substitute(values)
    if not hint:  # the page itself shows the default language; the chat asks
        page = page.replace('<html lang="" ', f'<html lang="{tr.language.code}" ', 1)
    page, policy = guards.with_nonce(page)  # the one inline script may run, nothing else inline
    return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-cache", **policy})


async def _resident(kz: Kiezstimme, channel: str, address: str) -> Any | None:
    residents = ResidentRepository(kz.db)
    return await kz.db.run(lambda conn: residents.find(conn, channel, address), write=False)


async def _answer(kz: Kiezstimme, address: str, ui_lang: str | None, *, was_known: bool = False) -> web.Response:
    """The messages waiting for a web chat client (see INTERFACES.md), and beside them the
    resident's language: ``lang`` and ``dir`` for the page (a German fallback message in an
    Arabic chat keeps its own ``lang``/``dir`` but does not turn the page), and ``ui``, the
    page's texts in that language, when the page says it shows another (``ui_lang``).
    ``erased``: the resident known before this message is gone (a confirmed DELETE, a declined
    consent); the page forgets the conversation it kept and goes on under a new id."""
    chat = kz.channels.webchat
    delivered = await kz.service.take_pending(chat.name, address)
    body: dict[str, Any] = {
        "messages": [{"text": d.text, "choices": d.choices, "lang": d.language, "dir": d.direction} for d in delivered]
    }
    resident = await _resident(kz, chat.name, address)
    if was_known and resident is None:
        body["erased"] = True
    tr = kz.catalogs.translators.get(resident.language) if resident is not None and resident.language else None
    if tr is not None:
        body["lang"] = tr.language.code
        body["dir"] = tr.language.direction
        if ui_lang != tr.language.code:
            body["ui"] = ui_texts(tr)
    return web.json_response(body)


def _ui_lang(value: object) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_TAG else None


async def webchat_post(request: web.Request) -> web.Response:
    from bot.web.webhooks import neutral

    kz = request.app[APP_KEY]
    chat = kz.channels.webchat
    try:  # every field checked by shape (channels/webchat.py): a malformed request stores nothing
        inbound, ui_lang = await chat.read_request(neutral(request), provider_id=uuid.uuid4().hex)
    except Rejected as exc:
        return _error(exc.status, exc.message)
    known = await _resident(kz, chat.name, inbound.address) is not None
    if not known:  # a new conversation: within its source's budget only (bot/web/guards.py)
        source = guards.client_source(request, kz.settings.client_ip_header)
        wait = request.app[NEW_CLIENTS].admit(source, inbound.address)
        if wait is not None:
            kz.metrics.webchat_refused.inc()
            return guards.too_many_new_clients(wait)
    try:
        await kz.inbox.receive(inbound, wait=True)  # in order, then answer at once
    except Rejected as exc:  # a message that can never be stored: refused alone
        return _error(exc.status, exc.message)
    return await _answer(kz, inbound.address, ui_lang, was_known=known)


async def webchat_poll(request: web.Request) -> web.Response:
    """Messages that arrived later (reminders, announcements) for a page that polls."""
    client_id = request.query.get("client_id", "")
    kz = request.app[APP_KEY]
    try:
        kz.channels.webchat.check_client(client_id)
    except Rejected as exc:
        return _error(exc.status, exc.message)
    return await _answer(kz, client_id, _ui_lang(request.query.get("ui_lang")))


def make_app(kz: Kiezstimme, *, background: bool = False) -> web.Application:
    """The web app. With ``background`` it also recovers the inbox and runs
    the outbox sender for as long as the app runs (the embedded mode)."""
    from bot.web import webhooks

    app = web.Application(
        middlewares=[guards.security_headers, guards.body_limits, errors], client_max_size=guards.MAX_BODY
    )
    app[APP_KEY] = kz
    app[NEW_CLIENTS] = guards.NewClientBudget(kz.settings.webchat_new_clients_per_hour)
    webhooks.add_routes(app, kz)
    if background:

        async def run_background(_app: web.Application):
            await kz.start_background()
            yield
            await kz.stop_background()

        app.cleanup_ctx.append(run_background)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/", index)
    app.router.add_post("/webchat/api/messages", webchat_post)
    app.router.add_get("/webchat/api/messages", webchat_poll)
    app.router.add_static("/static/", STATIC)
    from bot.web.admin import routes as admin

    admin.setup(app, kz)
    return app
