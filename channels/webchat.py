"""The web chat: the page at ``/`` talks to ``POST /webchat/api/messages``.

Replies are not pushed: the outbox rows for a client are handed to the page
in the response (or when it polls), and marked delivered then.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bot.values import Capabilities, Inbound, Outgoing, Rejected, SendError, Sent, WebhookRequest
from channels import inputs
from channels.base import BuildContext, ChannelSpec

NAME = "webchat"
CAPABILITIES = Capabilities(buttons=True, max_text=4000, delivery="pull")
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{8,128}")  # always fullmatch: "$" lets a trailing newline pass
MAX_TEXT = 10_000  # longer requests are refused outright; the dialogue re-asks below that
_ID_RULE = "8-128 characters of A-Z, a-z, 0-9, _ and -"


class BadRequest(Rejected):
    """The request does not follow the web chat API; the message says why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(status, message)


def parse_request(data: Any, provider_id: str) -> Inbound:
    """The resident's message, every field checked by shape (``BadRequest`` says which is wrong).
    ``client_id`` and ``message_id`` are opaque tokens matched entirely (no whitespace, no trailing
    newline); the text is cleaned of NUL bytes and lone surrogates (see :mod:`channels.inputs`)."""
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    client_id = data.get("client_id")
    if not isinstance(client_id, str) or not CLIENT_ID.fullmatch(client_id):
        raise BadRequest(f"client_id must be {_ID_RULE}")
    if not isinstance(data.get("text"), str):
        raise BadRequest("text must be a string")
    try:
        text = inputs.text(data["text"], "text", MAX_TEXT)
    except Rejected as exc:
        raise BadRequest(exc.message) from None
    lang = data.get("lang")
    if lang is not None and lang != "" and inputs.language_tag(lang) is None:
        raise BadRequest("lang must be a language tag")
    message_id = data.get("message_id")
    if message_id is not None:
        if not isinstance(message_id, str) or not CLIENT_ID.fullmatch(message_id):
            raise BadRequest(f"message_id must be {_ID_RULE}")
        provider_id = f"{client_id[:24]}:{message_id[:39]}"
    return Inbound(channel=NAME, address=client_id, provider_id=provider_id, text=text, locale_hint=lang or None)


class WebChatChannel:
    """A pull channel: no webhooks, no sender; the page's own API asks."""

    name = NAME
    capabilities = CAPABILITIES
    webhooks: dict[str, Any] = {}

    def check_client(self, client_id: str) -> None:
        if not CLIENT_ID.fullmatch(client_id):
            raise BadRequest(f"client_id must be {_ID_RULE}")

    async def read_message(self, request: WebhookRequest, provider_id: str) -> Inbound:
        """The resident's message from the page; ``BadRequest`` (415/400) says what is wrong."""
        return (await self.read_request(request, provider_id))[0]

    async def read_request(self, request: WebhookRequest, provider_id: str) -> tuple[Inbound, str | None]:
        """The resident's message and the language the page shows (``ui_lang``, a tag or None)."""
        if request.content_type != "application/json":
            raise BadRequest("send JSON (Content-Type: application/json)", status=415)
        try:
            data = json.loads(await request.text())
        except (ValueError, RecursionError, Rejected):  # not JSON, nested too deep, not text in its charset
            raise BadRequest("the body is not valid JSON") from None
        inbound = parse_request(data, provider_id)
        return inbound, inputs.language_tag(data.get("ui_lang"))

    async def send(self, address: str, message: Outgoing) -> Sent:
        raise SendError("the web chat is handed its messages when the page asks", permanent=True)

    async def fetch_media(self, source: dict[str, Any]) -> tuple[str, bytes] | None:
        return None

    async def close(self) -> None:
        pass


def build(ctx: BuildContext) -> WebChatChannel:
    return WebChatChannel()  # always on


SPEC = ChannelSpec(NAME, CAPABILITIES, build)
