"""The statistics page's figures: counts grouped in the database (GROUP BY), one read
transaction, the same statements on SQLite and PostgreSQL. Nothing here loops over residents:
every list is as long as the number of groups (channels × languages, topics × districts, …).

A resident's channel is the channel of their first channel identity (where they first wrote);
their district is the district of their ideas (one with ideas in two districts counts in both).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, or_, select, text, true
from sqlalchemy.engine import Connection
from sqlalchemy.orm import aliased

from bot.storage.db import Database
from bot.storage.models import ChannelIdentity, Feedback, Idea, OutboundMessage, Partner, Profile, Resident

PARTNER_PREFIX = "partner:"
BULK_PREFIXES = ("reminder:", "announce:", "broadcast:")  # idempotency keys of bulk messages (see outbox)
_DIGITS = "0123456789"


@dataclass(frozen=True)
class Window:
    """Only what happened from ``starts`` to before ``ends`` (a phase); None: no bound."""

    starts: datetime | None = None
    ends: datetime | None = None

    def where(self, column: Any) -> ColumnElement[bool]:
        parts = []
        if self.starts is not None:
            parts.append(column >= self.starts)
        if self.ends is not None:
            parts.append(column < self.ends)
        return and_(true(), *parts)


@dataclass(frozen=True)
class FunnelRow:
    language: str | None
    channel: str | None
    started: int
    consented: int
    with_idea: int


@dataclass(frozen=True)
class PartnerRow:
    code: str
    name: str
    started: int
    consented: int
    with_idea: int


@dataclass
class Statistics:
    """Grouped counts; the page turns them into charts and tables."""

    new_residents: list[tuple[datetime, str | None, int]] = field(default_factory=list)  # (UTC hour, channel, n)
    ideas: list[tuple[str, str | None, int]] = field(default_factory=list)  # (topic, district, ideas)
    funnel: list[FunnelRow] = field(default_factory=list)  # per language and channel
    districts: list[tuple[str | None, int]] = field(default_factory=list)  # (district, residents with ideas there)
    actor_groups: list[tuple[str, str | None, int]] = field(default_factory=list)  # (group, channel, residents)
    age_bands: list[tuple[str | None, int]] = field(default_factory=list)
    partners: list[PartnerRow] = field(default_factory=list)
    ratings: list[tuple[str, str, str, str, int]] = field(default_factory=list)  # statement, rating, lang, channel
    deliveries: list[tuple[str, str, int]] = field(default_factory=list)  # (campaign key, status, messages)


def _first_identity() -> ColumnElement[bool]:
    """Joins a resident's first channel identity (none older of the same resident): an index
    look-up per resident on both databases. (A join to a grouped subquery, or ``id IN`` a list of
    first ids, took SQLite quadratic time: it cannot index a derived table and drove the index
    look-up by the whole list for every resident.)"""
    older = aliased(ChannelIdentity)
    return and_(
        ChannelIdentity.resident_id == Resident.id,
        ~exists().where(older.resident_id == ChannelIdentity.resident_id, older.id < ChannelIdentity.id),
    )


def _has_idea(window: Window) -> Any:
    """1 for a resident with at least one idea in the window (counted with COUNT), else NULL."""
    authors = select(Idea.resident_id).where(Idea.resident_id.is_not(None), window.where(Idea.created_at))
    return case((Resident.id.in_(authors), 1))


def _hour(conn: Connection, column: Any) -> Any:
    if conn.dialect.name == "sqlite":
        return func.strftime("%Y-%m-%d %H", column)
    return func.date_trunc("hour", column)


def _as_hour(value: Any) -> datetime:
    """A grouped hour as an aware UTC datetime (SQLite gives text, PostgreSQL a naive datetime)."""
    if isinstance(value, str):
        return datetime.strptime(value, "%Y-%m-%d %H").replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC)


def _campaign(key: Any) -> Any:
    """The campaign of a bulk message's idempotency key ``CAMPAIGN:PART:IDENTITY``: the key
    without its last two parts (rtrim of digits and colons, in both databases)."""
    without_identity = func.rtrim(func.rtrim(key, _DIGITS), ":")
    return func.rtrim(func.rtrim(without_identity, _DIGITS), ":"), without_identity


def _new_residents(conn: Connection, window: Window) -> list[tuple[datetime, str | None, int]]:
    hour = _hour(conn, Resident.created_at).label("hour")
    rows = conn.execute(
        select(hour, ChannelIdentity.channel, func.count())
        .select_from(Resident)
        .outerjoin(ChannelIdentity, _first_identity())
        .where(window.where(Resident.created_at))
        .group_by(hour, ChannelIdentity.channel)
    ).all()
    return [(_as_hour(h), ch, n) for h, ch, n in rows]


def _funnel(conn: Connection, window: Window) -> list[FunnelRow]:
    rows = conn.execute(
        select(
            Resident.language,
            ChannelIdentity.channel,
            func.count(),
            func.count(Resident.consented_at),
            func.count(_has_idea(window)),
        )
        .select_from(Resident)
        .outerjoin(ChannelIdentity, _first_identity())
        .where(window.where(Resident.created_at))
        .group_by(Resident.language, ChannelIdentity.channel)
    ).all()
    return [FunnelRow(*row) for row in rows]


def _partners(conn: Connection, window: Window) -> list[PartnerRow]:
    counted = {
        source: (started, consented, with_idea)
        for source, started, consented, with_idea in conn.execute(
            select(
                Resident.source,
                func.count(),
                func.count(Resident.consented_at),
                func.count(_has_idea(window)),
            )
            .where(Resident.source.like(PARTNER_PREFIX + "%"), window.where(Resident.created_at))
            .group_by(Resident.source)
        ).all()
    }
    out = []
    for code, name in conn.execute(select(Partner.code, Partner.name).order_by(Partner.name)).all():
        started, consented, with_idea = counted.pop(PARTNER_PREFIX + code, (0, 0, 0))
        out.append(PartnerRow(code, name, started, consented, with_idea))
    for source, (started, consented, with_idea) in sorted(counted.items()):  # a code without a partner row
        code = str(source)[len(PARTNER_PREFIX) :]
        out.append(PartnerRow(code, code, started, consented, with_idea))
    return out


def _profiles(conn: Connection, window: Window) -> tuple[list[Any], list[tuple[str | None, int]]]:
    groups = conn.execute(
        select(Profile.actor_group, ChannelIdentity.channel, func.count())
        .join(Resident, Resident.id == Profile.resident_id)
        .outerjoin(ChannelIdentity, _first_identity())
        .where(Profile.actor_group.is_not(None), window.where(Resident.created_at))
        .group_by(Profile.actor_group, ChannelIdentity.channel)
    ).all()
    ages = conn.execute(
        select(Profile.age_band, func.count())
        .join(Resident, Resident.id == Profile.resident_id)
        .where(Profile.age_band.is_not(None), window.where(Resident.created_at))
        .group_by(Profile.age_band)
    ).all()
    return [tuple(r) for r in groups], [(a, n) for a, n in ages]


def _deliveries(conn: Connection, window: Window) -> list[tuple[str, str, int]]:
    """Messages of reminders, announcements and broadcasts by campaign and status; the first
    part of each text only (a long SMS split in two is one message to one resident)."""
    key = OutboundMessage.idempotency_key
    campaign, without_identity = _campaign(key)
    campaign = campaign.label("campaign")
    bulk = [key.like(prefix + "%") for prefix in BULK_PREFIXES]
    query: Select[Any] = (
        select(campaign, OutboundMessage.status, func.count())
        .where(
            or_(*bulk),
            without_identity.like("%:0"),
            window.where(OutboundMessage.created_at),
        )
        .group_by(campaign, OutboundMessage.status)
    )
    return [(c, s, n) for c, s, n in conn.execute(query).all()]


def _collect(conn: Connection, window: Window) -> Statistics:
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL enable_nestloop = off"))  # whole-table counts: hash joins (see db.py)
    stats = Statistics()
    stats.new_residents = _new_residents(conn, window)
    stats.ideas = [
        (t, d, n)
        for t, d, n in conn.execute(
            select(Idea.topic, Idea.district, func.count())
            .where(window.where(Idea.created_at))
            .group_by(Idea.topic, Idea.district)
        ).all()
    ]
    stats.funnel = _funnel(conn, window)
    stats.districts = [
        (d, n)
        for d, n in conn.execute(
            select(Idea.district, func.count(func.distinct(Idea.resident_id)))
            .where(Idea.district.is_not(None), Idea.resident_id.is_not(None), window.where(Idea.created_at))
            .group_by(Idea.district)
        ).all()
    ]
    stats.actor_groups, stats.age_bands = _profiles(conn, window)
    stats.partners = _partners(conn, window)
    stats.ratings = [
        tuple(r)  # type: ignore[misc]
        for r in conn.execute(
            select(Feedback.statement, Feedback.rating, Feedback.language, Feedback.channel, func.count())
            .where(window.where(Feedback.created_at))
            .group_by(Feedback.statement, Feedback.rating, Feedback.language, Feedback.channel)
        ).all()
    ]
    stats.deliveries = _deliveries(conn, window)
    return stats


async def collect(db: Database, window: Window = Window()) -> Statistics:
    """Every figure of the statistics page, in one read transaction."""
    return await db.run(lambda conn: _collect(conn, window), write=False)
