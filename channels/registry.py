"""The explicit registry of channels.

Every channel's capabilities are known (the renderer needs them even for a
channel that is switched off now); a channel is built only when its
variables (INTERFACES.md) are set. A new channel is one module under
``channels/`` plus its name in ``BUILT_IN_MODULES`` — or, from outside (tests, a
plugin), one call to :func:`register`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, Any

from bot.values import Capabilities
from channels import console, webchat  # the pull channels the web page and the terminal use
from channels.base import BuildContext, Channel, ChannelSpec, EntryPoint, WebhookHandler

if TYPE_CHECKING:  # pragma: no cover
    from bot.config import Settings

# the built-in channels: a module under channels/ each, exporting SPEC (the one line a new channel adds)
BUILT_IN_MODULES = ("telegram", "twilio_sms", "whatsapp", "webchat", "console")
_BUILT_IN: tuple[ChannelSpec, ...] = tuple(import_module(f"channels.{name}").SPEC for name in BUILT_IN_MODULES)
_CATALOGUE: dict[str, ChannelSpec] = {spec.name: spec for spec in _BUILT_IN}


def register(spec: ChannelSpec) -> None:
    """Make a channel known (built by :func:`build_channels` from then on)."""
    known = _CATALOGUE.get(spec.name)
    if known is not None and known is not spec:
        raise ValueError(f"a channel named {spec.name!r} is already registered")
    _CATALOGUE[spec.name] = spec


def unregister(name: str) -> None:
    if any(spec.name == name for spec in _BUILT_IN):
        raise ValueError(f"{name!r} is a built-in channel")
    _CATALOGUE.pop(name, None)


def specs() -> tuple[ChannelSpec, ...]:
    return tuple(_CATALOGUE.values())


def entry_points(settings: Any, payload: str, keyword: str) -> dict[str, EntryPoint]:
    """Per channel that has one and is configured, a printable way in: a deep link with
    ``payload`` or a message with ``keyword`` (an outreach partner's QR codes)."""
    out: dict[str, EntryPoint] = {}
    for known in specs():
        made = known.entry_point(settings, payload, keyword) if known.entry_point else None
        if made is not None:
            out[known.name] = made
    return out


def spec(name: str) -> ChannelSpec | None:
    return _CATALOGUE.get(name)


def capabilities(channel: str) -> Capabilities:
    found = _CATALOGUE.get(channel)
    return found.capabilities if found is not None else Capabilities()


def bulk_names() -> tuple[str, ...]:
    """Every known channel that takes reminders and announcements, on or off."""
    return tuple(s.name for s in _CATALOGUE.values() if s.capabilities.broadcasts)


@dataclass
class Channels:
    """The channels switched on by configuration, by name."""

    adapters: dict[str, Channel] = field(default_factory=dict)
    rates: dict[str, float | None] = field(default_factory=dict)  # per second, in each one's rate unit
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _routes: dict[str, WebhookHandler] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for adapter in self.adapters.values():
            for path, handler in getattr(adapter, "webhooks", {}).items():
                if self._routes.get(path, handler) != handler:
                    raise ValueError(f"two channels claim /webhooks/{path}")
                self._routes[path] = handler

    @property
    def push(self) -> dict[str, Channel]:
        return {n: a for n, a in self.adapters.items() if a.capabilities.delivery == "push"}

    def get(self, name: str) -> Channel | None:
        return self.adapters.get(name)

    def webhook(self, path: str) -> WebhookHandler | None:
        """The handler that owns ``/webhooks/{path}``, if a channel switched on does."""
        return self._routes.get(path.strip("/"))

    def bulk_targets(self) -> tuple[str, ...]:
        """The channels switched on that take reminders and announcements."""
        return tuple(n for n, a in self.adapters.items() if a.capabilities.broadcasts)

    @property
    def webchat(self) -> Any:
        return self.adapters.get(webchat.NAME) or webchat.WebChatChannel()

    @property
    def console(self) -> Any:
        return self.adapters.get(console.NAME) or console.ConsoleChannel()

    async def close(self) -> None:
        for adapter in self.adapters.values():
            await adapter.close()
        for closer in self.closers:
            await closer()


def build_channels(settings: Settings, max_media_bytes: int, extra: Iterable[ChannelSpec] = ()) -> Channels:
    """Build every known channel whose configuration is present (``extra`` are registered first)."""
    for added in extra:
        register(added)
    ctx = BuildContext(settings, max_media_bytes)
    adapters: dict[str, Channel] = {}
    rates: dict[str, float | None] = {}
    for known in _CATALOGUE.values():
        adapter = known.build(ctx)
        if adapter is None:
            continue
        adapters[known.name] = adapter
        rates[known.name] = settings.rates[known.name] if known.name in settings.rates else known.capabilities.rate
    return Channels(adapters, rates, ctx.closers)
