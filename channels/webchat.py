"""The web chat: the page at ``/`` talks to ``POST /webchat/api/messages``.

Replies are not pushed: the outbox rows for a client are handed to the page
in the response (or when it polls), and marked delivered then.
"""

from __future__ import annotations

import re
from typing import Any

from bot.values import Capabilities, Inbound

NAME = "webchat"
CAPABILITIES = Capabilities(buttons=True, max_text=4000)
CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
MAX_TEXT = 10_000  # longer requests are refused outright (413); the dialogue re-asks below that


class BadRequest(ValueError):
    """The request does not follow the web chat API; the message says why."""


def parse_request(data: Any, provider_id: str) -> Inbound:
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    client_id = data.get("client_id")
    text = data.get("text")
    if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
        raise BadRequest("client_id must be 8-128 characters of A-Z, a-z, 0-9, _ and -")
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
            raise BadRequest("message_id must be 8-128 characters of A-Z, a-z, 0-9, _ and -")
        provider_id = f"{client_id[:24]}:{message_id[:39]}"
    return Inbound(channel=NAME, address=client_id, provider_id=provider_id, text=text, locale_hint=lang)
