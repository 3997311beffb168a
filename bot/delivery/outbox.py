"""Bulk sending inside the service (broadcasts, reminders): enqueue one message
to a set of residents, each in their own language, in a few INSERT … SELECT
statements — one per language, channel and SMS part — whatever the number of
recipients. An idempotency key makes enqueuing twice send once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import String, and_, cast, func, literal, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import Select

from bot.storage.db import Database
from bot.storage.models import ChannelIdentity, Idea, OutboundMessage, Resident
from channels.registry import capabilities

BULK = 1  # priority: replies (0) always go first


@dataclass(frozen=True)
class Audience:
    """Who gets a bulk message. Empty filters mean everyone who opted in."""

    channels: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()  # of their ideas
    topics: tuple[str, ...] = ()  # of their ideas
    resident_ids: tuple[int, ...] | None = None
    opted_in_only: bool = True


@dataclass
class BulkResult:
    enqueued: dict[tuple[str, str], int] = field(default_factory=dict)  # (channel, language) -> messages
    without_text: dict[str, int] = field(default_factory=dict)  # language -> residents skipped

    @property
    def total(self) -> int:
        return sum(self.enqueued.values())


def audience_query(audience: Audience, channels: Iterable[str]) -> Select[Any]:
    """Residents × their channel identities that the audience selects."""
    wanted = [c for c in channels if not audience.channels or c in audience.channels]
    query = (
        select(Resident.id.label("resident_id"), Resident.language, ChannelIdentity.id.label("identity_id"),
               ChannelIdentity.channel, ChannelIdentity.address)
        .join(ChannelIdentity, ChannelIdentity.resident_id == Resident.id)
        .where(
            Resident.stopped_at.is_(None),
            Resident.unreachable_at.is_(None),
            Resident.consented_at.is_not(None),
            ChannelIdentity.channel.in_(wanted),
        )
    )
    if audience.opted_in_only:
        query = query.where(Resident.updates_opt_in.is_(True))
    if audience.languages:
        query = query.where(Resident.language.in_(audience.languages))
    if audience.resident_ids is not None:
        query = query.where(Resident.id.in_(audience.resident_ids))
    if audience.districts or audience.topics:
        ideas = select(Idea.resident_id).where(
            *([Idea.district.in_(audience.districts)] if audience.districts else []),
            *([Idea.topic.in_(audience.topics)] if audience.topics else []),
        )
        query = query.where(Resident.id.in_(ideas))
    return query


def channel_parts(channel: str, text: str) -> list[tuple[str, int | None]]:
    """The text as the channel sends it (its capabilities split it and count units, e.g. SMS segments)."""
    return capabilities(channel).fit(text)


async def enqueue_bulk(
    db: Database,
    *,
    key: str,
    texts: dict[str, str],
    audience: Audience,
    channels: Iterable[str],
    now: datetime,
    fallback: str | None = None,
    expires_at: datetime | None = None,
    directions: dict[str, str] | None = None,
) -> BulkResult:
    """Enqueue ``texts`` (language -> text) to the audience; safe to call twice with one key."""
    channels = tuple(channels)
    result = BulkResult()
    base = audience_query(audience, channels).subquery()
    async with db.read() as conn:
        counts = (await conn.execute(select(base.c.language, func.count()).group_by(base.c.language))).all()
    languages = {lang for lang, _ in counts if lang}
    for lang, n in counts:
        if lang not in texts and (fallback is None or fallback not in texts):
            result.without_text[lang or "?"] = n
    insert = sqlite.insert if db.is_sqlite else postgresql.insert
    async with db.transaction() as conn:
        for lang in sorted(languages):
            text_lang = lang if lang in texts else fallback
            if text_lang is None or text_lang not in texts:
                continue
            direction = (directions or {}).get(text_lang, "ltr")
            for channel in channels:
                for part_no, (part, segments) in enumerate(channel_parts(channel, texts[text_lang])):
                    source = (
                        select(
                            base.c.resident_id,
                            base.c.channel,
                            base.c.address,
                            literal(text_lang),
                            literal(part),
                            literal({"direction": direction, "choices": []}, OutboundMessage.payload.type),
                            literal(BULK),
                            literal("pending"),
                            literal(0),
                            literal(segments, OutboundMessage.segments.type),
                            literal(f"{key}:{part_no}:") + cast(base.c.identity_id, String),
                            literal(expires_at, OutboundMessage.expires_at.type),
                            literal(now, OutboundMessage.created_at.type),
                        )
                        .where(and_(base.c.language == lang, base.c.channel == channel))
                    )
                    stmt = (
                        insert(OutboundMessage)
                        .from_select(
                            ["resident_id", "channel", "address", "language", "text", "payload", "priority",
                             "status", "attempts", "segments", "idempotency_key", "expires_at", "created_at"],
                            source,
                        )
                        .on_conflict_do_nothing(index_elements=["idempotency_key"])
                    )
                    inserted = (await conn.execute(stmt)).rowcount
                    if part_no == 0 and inserted:
                        result.enqueued[(channel, lang)] = result.enqueued.get((channel, lang), 0) + inserted
    if not db.is_sqlite and result.total >= 1000:
        # fresh statistics at once, so the senders' claim query keeps its index plan
        # (autovacuum would get there only after a while; meanwhile every claim scans)
        async with db.transaction() as conn:
            await conn.execute(text("ANALYZE outbound_messages"))
    return result
