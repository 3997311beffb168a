"""The terminal: ``python -m bot chat`` (scriptable through stdin)."""

from __future__ import annotations

import uuid
from typing import Any

from bot.values import Capabilities, Inbound, Outgoing, SendError, Sent
from channels.base import ChannelSpec

NAME = "console"
CAPABILITIES = Capabilities(buttons=False, max_text=10_000, delivery="pull", broadcasts=False)


class ConsoleChannel:
    """A pull channel: the chat command hands over what is pending after each line."""

    name = NAME
    capabilities = CAPABILITIES
    webhooks: dict[str, Any] = {}

    def message(self, address: str, line: str, locale_hint: str | None = None) -> Inbound:
        return Inbound(channel=NAME, address=address, provider_id=uuid.uuid4().hex, text=line, locale_hint=locale_hint)

    async def send(self, address: str, message: Outgoing) -> Sent:
        raise SendError("the console is handed its messages after each line", permanent=True)

    async def fetch_media(self, source: dict[str, Any]) -> tuple[str, bytes] | None:
        return None

    async def close(self) -> None:
        pass


SPEC = ChannelSpec(NAME, CAPABILITIES, lambda ctx: ConsoleChannel())
