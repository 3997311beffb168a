"""What Kiezstimme stores about a resident, as lines they can read in the chat
(the DATA keyword). Pure: given what storage found, the lines as replies in the
resident's language; the service renders them and splits them the channel's way."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from bot.conversation import texts as M
from bot.conversation.flows import FlowSet
from bot.conversation.step import Msg, Reply

STATUS = {"new": M.STATUS_NEW, "approved": M.STATUS_APPROVED, "hidden": M.STATUS_HIDDEN, "spam": M.STATUS_HIDDEN}


@dataclass(frozen=True)
class IdeaRecord:
    reference: str
    text: str
    status: str
    created_at: datetime
    has_media: bool = False


@dataclass(frozen=True)
class RatingRecord:
    statement: str
    rating: str
    comment: str
    at: datetime


@dataclass(frozen=True)
class PersonalData:
    language: str | None
    consent_version: str | None
    consented_at: datetime | None
    updates: bool
    stopped: bool
    source: str | None
    channels: tuple[str, ...]
    ideas: tuple[IdeaRecord, ...] = field(default=())
    ratings: tuple[RatingRecord, ...] = field(default=())
    who: WhoSpeaks | None = None  # the group and age band they told us, if they did


@dataclass(frozen=True)
class WhoSpeaks:
    """The "who speaks" answers (ids of flows/actors.yaml; None: skipped)."""

    actor_group: str | None
    age_band: str | None


def lines(flows: FlowSet, data: PersonalData, language: str, zone: tzinfo) -> list[Reply]:
    """One reply per line, in the resident's language."""

    def line(msgid: str, **params: object) -> Reply:
        return Reply(msgid, language, params)

    def day(when: datetime) -> object:
        return when.astimezone(zone).date()

    out = [line(M.DATA_HEADER)]
    lang = flows.language(data.language)
    if lang is not None:
        out.append(line(M.DATA_LANGUAGE, language=lang.name))
    if data.consented_at is not None:
        out.append(line(M.DATA_CONSENT, date=day(data.consented_at), version=data.consent_version or ""))
    else:
        out.append(line(M.DATA_NO_CONSENT))
    out.append(line(M.DATA_UPDATES_YES if data.updates else M.DATA_UPDATES_NO))
    if data.stopped:
        out.append(line(M.DATA_STOPPED))
    if data.source:
        out.append(line(M.DATA_SOURCE, source=data.source))
    if data.channels:
        out.append(line(M.DATA_CHANNELS, channels=tuple(_channel_name(c) for c in data.channels)))
    for idea in data.ideas:
        text = idea.text or Msg(M.PHOTO_PLACEHOLDER if idea.has_media else M.NONE_GIVEN)
        status = Msg(STATUS.get(idea.status, M.STATUS_NEW))
        out.append(line(M.DATA_IDEA, reference=idea.reference, date=day(idea.created_at), status=status, text=text))
    numbers = {s.id: i for i, s in enumerate(flows.options.get("statements", ()), 1)}
    labels = {c.value: c.label for n in flows.nodes.values() if n.kind == "rate_statements" for c in n.choices}
    for r in data.ratings:
        rating = Msg(labels[r.rating]) if r.rating in labels else r.rating
        number = numbers.get(r.statement, 0)
        if r.comment:
            out.append(line(M.DATA_RATING_COMMENT, number=number, date=day(r.at), rating=rating, comment=r.comment))
        else:
            out.append(line(M.DATA_RATING, number=number, date=day(r.at), rating=rating))
    if not data.ideas and not data.ratings:
        out.append(line(M.DATA_NOTHING_YET))
    if data.who is not None:
        out.append(line(M.DATA_ACTOR_GROUP, group=_label(flows, "actor_groups", data.who.actor_group)))
        out.append(line(M.DATA_AGE_BAND, age=_label(flows, "age_bands", data.who.age_band)))
    out.append(line(M.DATA_FOOTER))
    return out


def _label(flows: FlowSet, kind: str, value: str | None) -> Msg | str:
    """An option's translated label; "not given" for a skip; the id itself if the list no longer has it."""
    if value is None:
        return Msg(M.NONE_GIVEN)
    found = next((o.label for o in flows.options.get(kind, ()) if o.id == value), None)
    return Msg(found) if found is not None else value


def _channel_name(channel: str) -> str | Msg:
    """Channel names as residents know them (brand names are not translated; the web chat is)."""
    names: dict[str, str | Msg] = {
        "telegram": "Telegram",
        "sms": "SMS",
        "whatsapp": "WhatsApp",
        "webchat": Msg(M.CHANNEL_WEBCHAT),
    }
    return names.get(channel, channel)
