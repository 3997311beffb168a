"""The small protocol every channel adapter implements.

An adapter knows its provider and nothing about flows: it turns a provider's
request into :class:`Inbound` messages and delivers :class:`Outgoing` ones.
What a channel can show is declared as :class:`Capabilities`, which the
renderer in ``bot.render`` reads (buttons or a numbered list, length, media).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from bot.values import Capabilities, Outgoing, Sent


class Channel(Protocol):
    """A provider channel that pushes messages (Telegram, SMS, WhatsApp)."""

    name: str
    capabilities: Capabilities

    async def send(self, address: str, message: Outgoing) -> Sent:
        """Deliver one message or raise SendError."""
        ...

    async def fetch_media(self, source: dict[str, Any]) -> tuple[str, bytes] | None:
        """Download a resident's file: (mime type, bytes), or None if it cannot be had."""
        ...

    async def close(self) -> None:
        ...
