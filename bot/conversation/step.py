"""What goes into one engine step and what comes out of it (goflow's shape).

Inputs are typed: a resident's :class:`Message`, a :class:`ReminderDue`, a
:class:`SessionExpired`. Out come :class:`Reply` values (message ids,
parameters, choices, a language) and effects for the service to apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from bot.conversation.session import Conversation
from bot.values import Media


@dataclass(frozen=True)
class Msg:
    """A translatable parameter value (e.g. a topic label), itself with parameters."""

    msgid: str
    params: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class ReplyChoice:
    value: str
    label: str  # msgid, or a literal when translate=False (language endonyms)
    translate: bool = True


@dataclass(frozen=True)
class Reply:
    msgid: str
    language: str | None  # None: before one is chosen, in ``languages`` (or a default pair)
    params: Mapping[str, Any] = field(default_factory=dict)
    choices: tuple[ReplyChoice, ...] = ()
    plural: str | None = None  # msgid_plural; the count is params[count]
    count: str | None = None
    languages: tuple[str, ...] = ()
    short: str | None = None  # msgid of a shorter wording for compact channels (SMS)
    compact: bool = False  # the choices once more, briefly: numbers on one line where there are no buttons
    short_without_choices: bool = False  # with the short wording, no numbered list (names are typed)


@dataclass(frozen=True)
class Message:
    """A resident's input, normalised by the channel adapter."""

    text: str | None = None
    choice: str | None = None  # the value of a pressed button
    media: Media | None = None
    locale_hint: str | None = None
    unsupported: str | None = None  # something we cannot use: "location", "contact", "poll", "sticker", "other"
    album: str | None = None  # the provider's album id when several photos were sent at once
    more_media: tuple[Media, ...] = ()  # the other photos of one message that carried several (MMS)


@dataclass(frozen=True)
class Context:
    now: datetime
    new_reference: str
    session_timeout: timedelta = timedelta(hours=24)
    accepts_media: bool = False
    buttons: bool = False  # the channel shows choices as buttons (else: numbers to type)
    zone: tzinfo = ZoneInfo("Europe/Berlin")  # for the dates residents are told


@dataclass(frozen=True)
class StoreIdea:
    reference: str
    text: str
    topic: str
    district: str | None
    language: str
    media: tuple[Media, ...] = ()


@dataclass(frozen=True)
class StoreFeedback:
    """A rating of one statement: stored when given, a later comment or a repeat of
    the dialogue updates the same record (one current rating per resident and statement)."""

    statement: str
    rating: str
    comment: str
    language: str
    media: tuple[Media, ...] = ()


@dataclass(frozen=True)
class StoreProfile:
    """Who speaks: the actor group and age band the resident chose to tell (None: skipped),
    kept apart from their ideas, one record per resident."""

    actor_group: str | None
    age_band: str | None


@dataclass(frozen=True)
class RecordConsent:
    version: str


@dataclass(frozen=True)
class SendData:
    """The resident asked what is stored about them (DATA): the service reads and sends it."""


@dataclass(frozen=True)
class EraseResident:
    """Erase everything that names or reaches the resident; with ``keep_ideas`` their
    ideas stay as anonymous text (no media, no link to anyone)."""

    keep_ideas: bool = False


@dataclass
class Outcome:
    conversation: Conversation
    replies: list[Reply] = field(default_factory=list)
    effects: list[Effect] = field(default_factory=list)


@dataclass(frozen=True)
class ReminderDue:
    """A deadline reminder fell due for the resident; ``dialogues`` are the ones
    of the phase whose deadline it is."""

    dialogues: tuple[str, ...]
    idle_after: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class SessionExpired:
    """The resident was away longer than the session timeout."""


Input = Message | ReminderDue | SessionExpired


@dataclass(frozen=True)
class Remind:
    """The effect of a :class:`ReminderDue`: which reminder the resident gets.

    ``kind`` is ``personal`` (they started this phase's dialogue and did not
    finish: "reply to continue"), ``general``, or ``later`` (they are in the
    middle of a dialogue right now: not interrupted, tried again later)."""

    kind: str


Effect = StoreIdea | StoreFeedback | StoreProfile | RecordConsent | EraseResident | Remind | SendData
