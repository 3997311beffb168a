"""A throwaway fourth channel, defined only here: a JSON-webhook chat service.

``FakeJsonChat`` is its provider, a real aiohttp server on loopback that
records every message sent to it (with the time it arrived). ``JsonChatChannel``
is the adapter, written against nothing but ``bot.values`` and
``channels.base`` — the proof that a new channel needs no edit under ``bot/``
or ``channels/``, only a :class:`ChannelSpec` handed to the registry.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from bot.values import Capabilities, Inbound, Outgoing, Rejected, SendError, Sent, WebhookRequest, WebhookResult
from channels.base import BuildContext, ChannelSpec

NAME = "jsonchat"
TOKEN_HEADER = "X-JsonChat-Token"
CAPABILITIES = Capabilities(buttons=True, max_text=300, rate=20.0)


class FakeJsonChat:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.root = ""

    async def _messages(self, request: web.Request) -> web.Response:
        data = await request.json()
        self.sent.append({**data, "at": time.monotonic()})
        return web.json_response({"id": f"jc-{next(self._ids)}"})

    async def __aenter__(self) -> FakeJsonChat:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.root = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def texts(self, user: str) -> list[str]:
        return [m["text"] for m in self.sent if m["to"] == user]


class JsonChatChannel:
    name = NAME
    capabilities = CAPABILITIES

    def __init__(self, api_root: str, token: str) -> None:
        self.api_root = api_root
        self.token = token
        self.webhooks = {"jsonchat/inbound": self.handle_webhook}
        self._session: aiohttp.ClientSession | None = None

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResult:
        if request.headers.get(TOKEN_HEADER) != self.token:
            return WebhookResult.reject(403, "forbidden")
        if request.content_type != "application/json":
            return WebhookResult.reject(415, "JSON expected")
        try:
            data = json.loads(await request.text())
            if not isinstance(data.get("id"), str) or not isinstance(data.get("user"), str):
                raise ValueError("id and user are required")
        except (ValueError, AttributeError, Rejected):
            return WebhookResult.reject(400, "not a jsonchat event")
        inbound = Inbound(
            channel=NAME, address=data["user"], provider_id=data["id"], text=data.get("text"), choice=data.get("choice")
        )
        return WebhookResult(status=200, body='{"ok": true}', content_type="application/json", inbound=(inbound,))

    async def send(self, address: str, message: Outgoing) -> Sent:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        body = {
            "to": address,
            "text": message.text,
            "buttons": [{"value": c.value, "label": c.label} for c in message.choices],
        }
        try:
            async with self._session.post(f"{self.api_root}/v1/messages", json=body) as resp:
                if resp.status != 200:
                    raise SendError(f"HTTP {resp.status}", permanent=resp.status < 500)
                return Sent(provider_id=(await resp.json())["id"])
        except aiohttp.ClientError as exc:
            raise SendError(f"network: {type(exc).__name__}", permanent=False) from None

    async def fetch_media(self, source: dict[str, Any]) -> tuple[str, bytes] | None:
        return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def spec(api_root: str, token: str) -> ChannelSpec:
    def build(ctx: BuildContext) -> JsonChatChannel:
        return JsonChatChannel(api_root, token)

    return ChannelSpec(NAME, CAPABILITIES, build)
