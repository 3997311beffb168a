"""The values every layer exchanges: the ground floor, importing nothing of ours.

The engine, the renderer, delivery and the channel adapters all speak in
these: a resident's :class:`Inbound` message and its :class:`Media`, a
rendered :class:`Outgoing` message, what a channel can do
(:class:`Capabilities`), and what a provider reports back
(:class:`Sent`, :class:`SendError`, :class:`StatusUpdate`,
:class:`ReachabilityChange`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

# the files a resident may send us, by kind: MIME type -> file extension
MEDIA_TYPES: dict[str, dict[str, str]] = {
    "voice": {
        "audio/ogg": "ogg",
        "audio/opus": "opus",
        "audio/mpeg": "mp3",
        "audio/mp4": "m4a",
        "audio/x-m4a": "m4a",
        "audio/aac": "aac",
        "audio/amr": "amr",
        "audio/wav": "wav",
        "audio/webm": "webm",
    },
    "photo": {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp", "image/heic": "heic", "image/gif": "gif"},
}


def media_kind(mime: str) -> str | None:
    """The kind ("voice", "photo") of a MIME type we take, or None."""
    mime = mime.split(";")[0].strip().lower()
    for kind, types in MEDIA_TYPES.items():
        if mime in types:
            return kind
    return None


@dataclass(frozen=True)
class Media:
    kind: str  # "voice", "photo"; "too_large" / "unsupported" when refused
    ref: str  # where the service stored it (relative to MEDIA_DIR); "" until fetched
    mime: str = ""
    size: int = 0
    source: Mapping[str, Any] | None = field(default=None, compare=False)  # where the channel can fetch it


def _no_split(text: str) -> list[str]:
    return [text]


def cut(text: str, limit: int) -> list[str]:
    """A text in pieces of at most ``limit`` characters, cut at a space where one is near."""
    pieces: list[str] = []
    while len(text) > limit:
        at = text.rfind(" ", limit // 2, limit + 1)
        at = at if at > 0 else limit
        pieces.append(text[:at].rstrip())
        text = text[at:].lstrip()
    return pieces + [text]


@dataclass(frozen=True)
class Capabilities:
    """What a channel can do, declared by its adapter; the core reads only this.

    Readers: the renderer (``buttons``, ``max_text``, ``split``, ``units``),
    the service (``media``), the sender (``rate``, ``rate_unit``,
    ``reply_window``, ``templates``, ``window_label``), the registry
    (``delivery``: who gets a sender; ``rate`` under ``settings.rates``),
    bulk sending and broadcasts (``broadcasts``, ``units``, ``reply_window``,
    ``delivery``).
    """

    buttons: bool = False  # choices as buttons to tap; otherwise a numbered list to answer by typing the number
    max_text: int = 4096  # no part ever sent is longer (split, then cut at a space)
    media: tuple[str, ...] = ()  # kinds a resident can send us: "voice", "photo"
    encoding: str = "unicode"  # what the splitter keeps the text in ("gsm7" for SMS)
    split: Callable[[str], list[str]] = field(default=_no_split, compare=False)  # a long text in parts
    units: Callable[[str], int] | None = field(default=None, compare=False)  # billable units of a part (SMS segments)
    rate: float | None = None  # default sends per second, in rate_unit; None = unlimited
    rate_unit: str = "message"  # "message" or "segment" (what the pacer counts: ``units`` of each part)
    reply_window: timedelta | None = None  # free text only this long after the resident's last message
    templates: Callable[[Any], Mapping[str, str]] | None = field(
        default=None, compare=False
    )  # flows -> language: approved template
    window_label: str = "the reply window"  # how reasons name the window
    delivery: str = "push"  # "push": a sender delivers to a provider; "pull": handed over when the client asks
    broadcasts: bool = True  # reachable later: reminders, announcements and notices go here too
    compact: bool = False  # every character costs (SMS): prompts use their short wording where they have one

    def fit(self, text: str) -> list[tuple[str, int | None]]:
        """The text as the channel sends it: split its way, never over ``max_text``; units per part."""
        parts = [piece for part in self.split(text) for piece in cut(part, self.max_text)]
        return [(part, self.units(part) if self.units else None) for part in parts]


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


class Rejected(Exception):
    """A request an adapter refuses: the HTTP status and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class WebhookRequest:
    """A provider's HTTP request, framework-neutral. The body is read only
    when the adapter asks (after its cheap checks)."""

    path: str  # as requested, e.g. "/webhooks/twilio/sms"
    query_string: str
    headers: Mapping[str, str]  # case-insensitive where the web layer provides it
    content_type: str
    read: Callable[[], Awaitable[bytes]] = field(compare=False)
    charset: str | None = None

    @property
    def path_qs(self) -> str:
        return f"{self.path}?{self.query_string}" if self.query_string else self.path

    async def body(self) -> bytes:
        return await self.read()

    async def text(self) -> str:
        """The body decoded with its charset (UTF-8 by default); ``Rejected`` (400) if it does not decode."""
        try:
            return (await self.read()).decode(self.charset or "utf-8")
        except (UnicodeDecodeError, LookupError):
            raise Rejected(400, "the body is not valid text in its charset") from None


@dataclass(frozen=True)
class WebhookResult:
    """What an adapter answers a webhook with, and what the core is to do."""

    status: int = 200
    body: str = ""
    content_type: str = "text/plain"
    inbound: tuple[Inbound, ...] = ()  # to store durably before acknowledging
    reachability: tuple[ReachabilityChange, ...] = ()
    statuses: tuple[StatusUpdate, ...] = ()  # delivery reports
    after_ack: Callable[[], Awaitable[None]] | None = field(default=None, compare=False)  # once a new message is stored

    @classmethod
    def reject(cls, status: int, message: str) -> WebhookResult:
        return cls(status=status, body=message)
