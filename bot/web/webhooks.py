"""Provider webhooks: one route over the channel registry.

``POST /webhooks/{path}`` goes to the adapter that owns the path (404 if no
channel switched on does). The adapter verifies and reads the request and
answers with a :class:`WebhookResult`; here its messages are stored durably,
reachability and delivery reports applied, and only then is the adapter's
acknowledgement returned. A forged or malformed request gets the adapter's
4xx and changes nothing; a redelivered one (same ``update_id`` /
``MessageSid``) is acknowledged again and has no second effect (the inbox's
unique constraint decides).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from bot.app import Kiezstimme
from bot.delivery.sender import record_status
from bot.values import Rejected, WebhookRequest, WebhookResult

KZ = web.AppKey("kiezstimme-webhooks", Kiezstimme)
_background: set[asyncio.Task[Any]] = set()


def _later(coro: Any) -> None:
    task = asyncio.create_task(coro)
    _background.add(task)
    task.add_done_callback(_background.discard)


async def apply(kz: Kiezstimme, result: WebhookResult) -> None:
    """Everything a webhook brought, done before it is acknowledged."""
    for change in result.reachability:
        await kz.service.set_reachable(change)
    stored = [inbound for inbound in result.inbound if await kz.inbox.receive(inbound)]
    for report in result.statuses:
        await record_status(kz.db, kz.service.clock, report)
    if result.after_ack is not None and stored:
        _later(result.after_ack())


def neutral(request: web.Request) -> WebhookRequest:
    async def read() -> bytes:
        try:
            return await request.read()
        except RequestPayloadError:  # a Content-Encoding the body does not have, a broken chunked body
            raise web.HTTPBadRequest(text="the body does not decode") from None

    return WebhookRequest(
        path=request.rel_url.raw_path,
        query_string=request.rel_url.raw_query_string,
        headers=request.headers,
        content_type=request.content_type,
        charset=request.charset,
        read=read,
    )


async def webhook(request: web.Request) -> web.Response:
    kz = request.app[KZ]
    handler = kz.channels.webhook(request.match_info["path"])
    if handler is None:
        raise web.HTTPNotFound()
    result = await handler(neutral(request))
    if result.status < 300:
        try:
            await apply(kz, result)
        except Rejected as exc:  # a message that can never be stored (the others of its batch are)
            return web.Response(status=exc.status, text=exc.message)
    return web.Response(status=result.status, text=result.body, content_type=result.content_type)


def add_routes(app: web.Application, kz: Kiezstimme) -> None:
    app[KZ] = kz
    app.router.add_post("/webhooks/{path:.+}", webhook)
