"""Audiences of bulk messages: which residents, through which channel
identities, a broadcast or reminder goes to — and how many, for a dry run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.sql import Select

from bot.storage.db import Database
from bot.storage.models import ChannelIdentity, Idea, Resident


@dataclass(frozen=True)
class Audience:
    """Who gets a bulk message. Empty filters mean everyone who opted in."""

    channels: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    districts: tuple[str, ...] = ()  # of their ideas
    topics: tuple[str, ...] = ()  # of their ideas
    sources: tuple[str, ...] = ()  # how they arrived (residents.source, e.g. partner:CODE)
    resident_ids: tuple[int, ...] | None = None
    opted_in_only: bool = True


def audience_query(audience: Audience, channels: Iterable[str]) -> Select:
    """Residents × their channel identities that the audience selects."""
    wanted = [c for c in channels if not audience.channels or c in audience.channels]
    query: Select = (
        select(
            Resident.id.label("resident_id"),
            Resident.language,
            ChannelIdentity.id.label("identity_id"),
            ChannelIdentity.channel,
            ChannelIdentity.address,  # the keyed hash
            ChannelIdentity.address_enc,  # copied into the outbox, opened only to send
        )
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
    if audience.sources:
        query = query.where(Resident.source.in_(audience.sources))
    if audience.resident_ids is not None:
        query = query.where(Resident.id.in_(audience.resident_ids))
    if audience.districts or audience.topics:
        ideas = select(Idea.resident_id).where(
            *([Idea.district.in_(audience.districts)] if audience.districts else []),
            *([Idea.topic.in_(audience.topics)] if audience.topics else []),
        )
        query = query.where(Resident.id.in_(ideas))
    return query


class AudienceRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def residents(self, audience: Audience, channels: Iterable[str]) -> set[int]:
        """The ids of the residents the audience selects."""
        base = audience_query(audience, channels).subquery()
        async with self.db.read() as conn:
            await self.db.plan_for_many(conn)
            return set((await conn.execute(select(base.c.resident_id).distinct())).scalars())

    async def counts(
        self, audience: Audience, channels: Iterable[str], window_since: Mapping[str, datetime]
    ) -> tuple[list[tuple[str, str | None, int]], dict[tuple[str, str | None], int]]:
        """(channel, language, residents) the audience has, and per (channel, language) the
        residents of channels with a reply window who last wrote before ``window_since[channel]``."""
        base = audience_query(audience, channels).subquery()
        outside: dict[tuple[str, str | None], int] = {}
        async with self.db.read() as conn:
            await self.db.plan_for_many(conn)
            counts = (
                await conn.execute(
                    select(base.c.channel, base.c.language, func.count()).group_by(base.c.channel, base.c.language)
                )
            ).all()
            for channel, since in window_since.items():
                rows = (
                    await conn.execute(
                        select(base.c.language, func.count())
                        .join(ChannelIdentity, ChannelIdentity.id == base.c.identity_id)
                        .where(base.c.channel == channel)
                        .where((ChannelIdentity.last_inbound_at.is_(None)) | (ChannelIdentity.last_inbound_at < since))
                        .group_by(base.c.language)
                    )
                ).all()
                outside.update({(channel, lang): n for lang, n in rows})
        return [(r[0], r[1], r[2]) for r in counts], outside
