"""The web chat: the page at ``/`` talks to ``POST /webchat/api/messages``.

Replies are not pushed: the outbox rows for a client are handed to the page
in the response (or when it polls), and marked delivered then.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bot.values import Capabilities, Inbound, Outgoing, Rejected, SendError, Sent, WebhookRequest
from channels.base import BuildContext, ChannelSpec

NAME = "webchat"
CAPABILITIES = Capabilities(buttons=True, max_text=4000, delivery="pull")
CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
MAX_TEXT = 10_000  # longer requests are refused outright; the dialogue re-asks below that
_ID_RULE = "8-128 characters of A-Z, a-z, 0-9, _ and -"


class BadRequest(Rejected):
    """The request does not follow the web chat API; the message says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(status, message)


def parse_request(data: Any, provider_id: str) -> Inbound:
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    client_id = data.get("client_id")
    text = data.get("text")
    if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
        raise BadRequest(f"client_id must be {_ID_RULE}")
    if not isinstance(text, str):
        raise BadRequest("text must be a string")
    if len(text) > MAX_TEXT:
        raise BadRequest(f"text must be at most {MAX_TEXT} characters")
    lang = data.get("lang")
    if lang is not None and (not isinstance(lang, str) or len(lang) > 35):
        raise BadRequest("lang must be a language tag")
    message_id = data.get("message_id")
    if message_id is not None:
        if not isinstance(message_id, str) or not CLIENT_ID.match(message_id):
            raise BadRequest(f"message_id must be {_ID_RULE}")
        provider_id = f"{client_id[:24]}:{message_id[:39]}"
    return Inbound(channel=NAME, address=client_id, provider_id=provider_id, text=text, locale_hint=lang)


class WebChatChannel:
    """A pull channel: no webhooks, no sender; the page's own API asks."""

    name = NAME
    capabilities = CAPABILITIES
    webhooks: dict[str, Any] = {}

    def check_client(self, client_id: str) -> None:
        if not CLIENT_ID.match(client_id):
            raise BadRequest(f"client_id must be {_ID_RULE}")

    async def read_message(self, request: WebhookRequest, provider_id: str) -> Inbound:
        """The resident's message from the page; ``BadRequest`` (415/400) says what is wrong."""
        if request.content_type != "application/json":
            raise BadRequest("send JSON (Content-Type: application/json)", status=415)
        try:
            data = json.loads(await request.text())
        except (json.JSONDecodeError, Rejected):
            raise BadRequest("the body is not valid JSON") from None
        return parse_request(data, provider_id)

    async def send(self, address: str, message: Outgoing) -> Sent:
        raise SendError("the web chat is handed its messages when the page asks", permanent=True)

    async def fetch_media(self, source: dict[str, Any]) -> tuple[str, bytes] | None:
        return None

    async def close(self) -> None:
        pass


def build(ctx: BuildContext) -> WebChatChannel:
    return WebChatChannel()  # always on


SPEC = ChannelSpec(NAME, CAPABILITIES, build)
