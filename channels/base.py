"""The small protocol every channel adapter implements.

An adapter knows its provider and nothing about flows. It owns both
directions: it verifies and parses its own webhooks (:class:`WebhookRequest`
in, :class:`WebhookResult` out: the provider's acknowledgement plus the
inbound messages, reachability changes and delivery reports for the core),
and it delivers :class:`Outgoing` messages. What a channel can do is declared
as :class:`Capabilities`, which the core reads instead of the channel's name.

A channel is made known by a :class:`ChannelSpec` in ``channels.registry``:
its name, its capabilities and how to build it from the settings.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from bot.values import Capabilities, Outgoing, Sent, WebhookRequest, WebhookResult

if TYPE_CHECKING:  # pragma: no cover
    from bot.config import Settings

WebhookHandler = Callable[[WebhookRequest], Awaitable[WebhookResult]]


class Channel(Protocol):
    """A channel switched on. Push channels are drained by a sender; pull
    channels (web chat, console) are handed their messages when they ask."""

    @property
    def name(self) -> str: ...

    @property
    def capabilities(self) -> Capabilities: ...

    @property
    def webhooks(self) -> Mapping[str, WebhookHandler]:
        """Path under /webhooks/ -> handler; empty if none."""
        ...

    async def send(self, address: str, message: Outgoing) -> Sent:
        """Deliver one message or raise SendError (push channels)."""
        ...

    async def fetch_media(self, source: dict[str, Any]) -> tuple[str, bytes] | None:
        """Download a resident's file: (mime type, bytes), or None if it cannot be had."""
        ...

    async def close(self) -> None: ...


@dataclass
class BuildContext:
    """What adapters share while they are built: settings, media limit,
    resources used by several adapters (one Twilio account) and their closers."""

    settings: Settings
    max_media_bytes: int
    shared: dict[str, Any] = field(default_factory=dict)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


PHONE = re.compile(r"\+[1-9][0-9]{6,15}")  # an E.164 number


@dataclass(frozen=True)
class EntryPoint:
    """How a printed code starts a conversation on a channel (an outreach partner's poster):
    what its QR code holds and what is printed under it."""

    kind: str  # the channel's name
    content: str  # what the QR code encodes
    link: str | None  # a link to print and to follow (None: the QR code itself opens a message)
    keyword: str  # what the resident sends (START CODE)
    number: str | None  # where to send it


# (settings, start payload of a deep link, keyword a resident sends) -> the entry point, if configured
EntryPointMaker = Callable[[Any, str, str], "EntryPoint | None"]


@dataclass(frozen=True)
class ChannelSpec:
    """A channel the registry knows: even when switched off its capabilities
    are known (the renderer and bulk sending need them)."""

    name: str
    capabilities: Capabilities
    build: Callable[[BuildContext], Channel | None]  # None: switched off by configuration
    requires: str = ""  # the variables that switch it on, for error messages
    registers_webhook: bool = False  # has ``register_webhook(public_url) -> url`` (CLI: NAME set-webhook)
    entry_point: EntryPointMaker | None = None  # a printable way in (deep link, prefilled message)
