"""The values every layer exchanges: the ground floor, importing nothing of ours.

The engine, the renderer, delivery and the channel adapters all speak in
these: a resident's :class:`Inbound` message and its :class:`Media`, a
rendered :class:`Outgoing` message, what a channel can do
(:class:`Capabilities`), and what a provider reports back
(:class:`Sent`, :class:`SendError`, :class:`StatusUpdate`,
:class:`ReachabilityChange`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Mapping


@dataclass(frozen=True)
class Media:
    kind: str  # "voice", "photo"; "too_large" / "unsupported" when refused
    ref: str  # where the service stored it (relative to MEDIA_DIR); "" until fetched
    mime: str = ""
    size: int = 0
    source: Mapping[str, Any] | None = field(default=None, compare=False)  # where the channel can fetch it


@dataclass(frozen=True)
class Capabilities:
    buttons: bool = False  # can show choices as buttons
    max_text: int = 4096
    media: tuple[str, ...] = ()  # kinds a resident can send us: "voice", "photo"
    encoding: str = "unicode"  # "gsm7" for SMS: keep text in GSM-7 where possible
    reply_window: timedelta | None = None  # free text only this long after the resident's last message


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
            media = {
                "kind": self.media.kind,
                "ref": self.media.ref,
                "mime": self.media.mime,
                "size": self.media.size,
                "source": dict(self.media.source) if self.media.source else None,
            }
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
    segments: int | None = None  # SMS segments, where the channel counts them
    template: str | None = None  # WhatsApp: an approved Content SID to send instead of free text


@dataclass(frozen=True)
class Sent:
    provider_id: str | None
    segments: int | None = None


class SendError(Exception):
    """Delivery failed. ``permanent`` ends the message; otherwise it is retried
    (not before ``retry_after`` seconds when the provider said so)."""

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool,
        retry_after: float | None = None,
        unreachable: bool = False,
        opted_out: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after
        self.unreachable = unreachable  # e.g. the resident blocked the bot
        self.opted_out = opted_out  # e.g. STOP at the carrier (Twilio 21610)


@dataclass(frozen=True)
class ReachabilityChange:
    """A provider told us a resident can (not) be reached, e.g. a blocked Telegram bot."""

    channel: str
    address: str
    reachable: bool


@dataclass(frozen=True)
class StatusUpdate:
    """A provider's delivery report for one message, in our terms."""

    provider_id: str
    status: str  # sent, delivered, read, undelivered, failed, …
    error: str | None = None  # code and meaning, e.g. "21610 unsubscribed at the carrier (STOP)"
    opted_out: bool = False  # the resident unsubscribed at the carrier
