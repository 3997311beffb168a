"""Provider webhooks: verify, store durably, acknowledge, process after.

A forged or malformed request gets a 4xx and changes nothing; a redelivered
one (same ``update_id`` / ``MessageSid``) is acknowledged again and has no
second effect (the inbox's unique constraint decides).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from bot.app import Kiezstimme
from bot.delivery.sender import record_status
from channels.telegram import SECRET_HEADER
from channels.twilio_base import SIGNATURE_HEADER, has_required, status_update

log = logging.getLogger(__name__)
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
KZ = web.AppKey("kiezstimme-webhooks", Kiezstimme)
_background: set[asyncio.Task[Any]] = set()


def _later(coro: Any) -> None:
    task = asyncio.create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


async def telegram(request: web.Request) -> web.Response:
    kz = request.app[KZ]
    channel = kz.channels.telegram
    if channel is None:
        raise web.HTTPNotFound()
    if not channel.verify(request.headers.get(SECRET_HEADER)):
        return web.json_response({"error": "forbidden"}, status=403)
    try:
        data = json.loads(await request.text())
        if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
            raise ValueError("not an Update")
    except (ValueError, UnicodeDecodeError):
        return web.json_response({"error": "not a Telegram update"}, status=400)
    try:
        parsed = channel.parse(data)
    except Exception:  # noqa: BLE001 - a poison update is acknowledged, logged and dropped
        log.exception("could not read Telegram update %s; acknowledged and dropped", data.get("update_id"))
        return web.json_response({})
    for change in parsed.reachability:
        await kz.service.set_reachable(change)
    stored = [inbound for inbound in parsed.inbound if await kz.inbox.receive(inbound)]
    if parsed.callback and stored:
        _later(channel.acknowledge(parsed.callback))
    return web.json_response({})


async def _twilio_form(request: web.Request, kz: Kiezstimme) -> Any:
    if kz.channels.twilio is None:
        raise web.HTTPNotFound()
    if request.content_type != "application/x-www-form-urlencoded":
        raise web.HTTPUnsupportedMediaType(text="form-encoded body expected")
    form = await request.post()
    if not kz.channels.twilio.verify(request.path_qs, form, request.headers.get(SIGNATURE_HEADER)):
        raise web.HTTPForbidden(text="invalid signature")
    return form


async def _twilio_inbound(request: web.Request, name: str) -> web.Response:
    kz = request.app[KZ]
    channel = kz.channels.sms if name == "sms" else kz.channels.whatsapp
    if channel is None:
        raise web.HTTPNotFound()
    form = await _twilio_form(request, kz)
    if not has_required(form):
        raise web.HTTPBadRequest(text="MessageSid and From are required")
    inbound = channel.parse(form)
    await kz.inbox.receive(inbound)
    return web.Response(text=EMPTY_TWIML, content_type="text/xml")


async def twilio_sms(request: web.Request) -> web.Response:
    return await _twilio_inbound(request, "sms")


async def twilio_whatsapp(request: web.Request) -> web.Response:
    return await _twilio_inbound(request, "whatsapp")


async def twilio_status(request: web.Request) -> web.Response:
    kz = request.app[KZ]
    form = await _twilio_form(request, kz)
    report = status_update(form)
    if report is None:
        raise web.HTTPBadRequest(text="MessageSid and MessageStatus are required")
    await record_status(kz.db, kz.service.clock, report)
    return web.Response(text=EMPTY_TWIML, content_type="text/xml")


def add_routes(app: web.Application, kz: Kiezstimme) -> None:
    app[KZ] = kz
    app.router.add_post("/webhooks/telegram", telegram)
    app.router.add_post("/webhooks/twilio/sms", twilio_sms)
    app.router.add_post("/webhooks/twilio/whatsapp", twilio_whatsapp)
    app.router.add_post("/webhooks/twilio/status", twilio_status)
