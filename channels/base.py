"""The small protocol every channel adapter implements.

An adapter knows its provider and nothing about flows: it turns a provider's
request into :class:`Inbound` messages and delivers :class:`Outgoing` ones.
What a channel can show is declared as :class:`Capabilities`, which the
renderer in ``bot.render`` reads (buttons or a numbered list, length, media).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.engine import Media


@dataclass(frozen=True)
class Capabilities:
    buttons: bool = False  # can show choices as buttons
    max_text: int = 4096
    media: tuple[str, ...] = ()  # kinds a resident can send us: "voice", "photo"
    encoding: str = "unicode"  # "gsm7" for SMS: keep text in GSM-7 where possible


@dataclass(frozen=True)
class Inbound:
    """One message from a resident, as the adapter understood it."""

    channel: str
    address: str  # chat id, E.164 number, web chat client id — never logged
    provider_id: str  # unique per channel: update_id, MessageSid, ...
    text: str | None = None
    choice: str | None = None
    media: Media | None = None
    locale_hint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        media = None
        if self.media is not None:
            media = {"kind": self.media.kind, "ref": self.media.ref, "mime": self.media.mime, "size": self.media.size}
        return {
            "text": self.text,
            "choice": self.choice,
            "media": media,
            "locale_hint": self.locale_hint,
            "extra": self.extra,
        }


@dataclass(frozen=True)
class OutgoingChoice:
    value: str
    label: str


@dataclass(frozen=True)
class Outgoing:
    """One rendered message, ready for a channel."""

    text: str
    language: str | None
    direction: str = "ltr"
    choices: tuple[OutgoingChoice, ...] = ()


class Channel(Protocol):
    name: str
    capabilities: Capabilities

    async def send(self, address: str, message: Outgoing) -> str | None:
        """Deliver one message; return the provider's message id, if any."""
        ...
