"""What the dashboard's moderation pages read and change: ideas and feedback comments,
searched, filtered and paged in the database (both SQLite and PostgreSQL), never in Python."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, and_, cast, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from bot.storage.db import Database
from bot.storage.models import Feedback, Idea, Resident

STATUSES = ("new", "approved", "hidden", "spam")
NO_DISTRICT = "none"  # the districts' "prefer not to say", stored as NULL
_EMPTY_MEDIA = ("[]", "null")


def _like(text: str) -> str:
    """``%text%`` with LIKE's own characters taken literally (escape character ``\\``)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _has_media(column: Any) -> ColumnElement[bool]:
    as_text = cast(column, Text)
    return and_(as_text.is_not(None), as_text.not_in(_EMPTY_MEDIA))


FOLD = "kz_casefold"  # SQLite's lower() knows only ASCII: "ÄPFEL", "Straße", "МОСТ" need Python's casefold


def _casefold(value: str | None) -> str | None:
    return value.casefold() if isinstance(value, str) else value


def _words(column: Any, q: str, sqlite: bool) -> ColumnElement[bool]:
    """Every word of ``q`` somewhere in ``column``, in any case and any script: ILIKE on
    PostgreSQL, both sides case-folded by Python on SQLite (see :func:`_with_casefold`)."""
    if sqlite:
        return and_(*(func.kz_casefold(column).like(_like(w.casefold()), escape="\\") for w in q.split()))
    return and_(*(column.ilike(_like(w), escape="\\") for w in q.split()))


def _with_casefold(conn: Connection) -> None:
    """Give this SQLite connection the case-folding function the word search uses."""
    raw = conn.connection.driver_connection
    if isinstance(raw, sqlite3.Connection):
        raw.create_function(FOLD, 1, _casefold, deterministic=True)


@dataclass(frozen=True)
class IdeaFilter:
    q: str = ""
    since: datetime | None = None  # a phase: created within [since, until]
    until: datetime | None = None
    topic: str = ""
    district: str = ""
    language: str = ""
    channel: str = ""
    status: str = ""
    source: str = ""
    has_media: bool | None = None

    def conditions(self, sqlite: bool) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        q = self.q.strip()
        if q:
            reference = q.upper()
            if len(reference) == 6 and reference.isalnum():  # typed without its dash
                reference = f"{reference[:3]}-{reference[3:]}"
            where.append(or_(Idea.reference.ilike(_like(reference), escape="\\"), _words(Idea.text, q, sqlite)))
        if self.since is not None:
            where.append(Idea.created_at >= self.since)
        if self.until is not None:
            where.append(Idea.created_at <= self.until)
        if self.district == NO_DISTRICT:
            where.append(Idea.district.is_(None))
        elif self.district:
            where.append(Idea.district == self.district)
        for column, value in (
            (Idea.topic, self.topic),
            (Idea.language, self.language),
            (Idea.channel, self.channel),
            (Idea.status, self.status),
            (Resident.source, self.source),
        ):
            if value:
                where.append(column == value)
        if self.has_media is True:
            where.append(_has_media(Idea.media))
        elif self.has_media is False:
            where.append(~_has_media(Idea.media))
        return where


@dataclass(frozen=True)
class FeedbackFilter:
    q: str = ""
    statement: str = ""
    rating: str = ""
    status: str = ""
    language: str = ""
    channel: str = ""

    def conditions(self, sqlite: bool) -> list[ColumnElement[bool]]:
        # comments are what is moderated: a bare rating has nothing to read
        where: list[ColumnElement[bool]] = [or_(Feedback.comment != "", _has_media(Feedback.media))]
        if self.q.strip():
            where.append(_words(Feedback.comment, self.q, sqlite))
        for column, value in (
            (Feedback.statement, self.statement),
            (Feedback.rating, self.rating),
            (Feedback.status, self.status),
            (Feedback.language, self.language),
            (Feedback.channel, self.channel),
        ):
            if value:
                where.append(column == value)
        return where


@dataclass(frozen=True)
class Listing:
    rows: list[Any]
    total: int


_IDEA_COLUMNS = (
    Idea.id,
    Idea.reference,
    Idea.text,
    Idea.topic,
    Idea.district,
    Idea.language,
    Idea.channel,
    Idea.media,
    Idea.status,
    Idea.created_at,
    Idea.public_note,
    Idea.internal_note,
    Idea.moderated_at,
    Resident.source,
)


class ModerationRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- ideas ------------------------------------------------------------------------------

    async def ideas(self, wanted: IdeaFilter, limit: int, offset: int) -> Listing:
        """One page of the matching ideas, newest first, and how many match in all."""
        where = wanted.conditions(self.db.is_sqlite)
        joined = select(*_IDEA_COLUMNS).outerjoin(Resident, Resident.id == Idea.resident_id).where(*where)
        counted = (
            select(func.count()).select_from(Idea).outerjoin(Resident, Resident.id == Idea.resident_id).where(*where)
        )
        page = joined.order_by(Idea.created_at.desc(), Idea.id.desc()).limit(limit).offset(offset)

        def work(conn: Connection) -> Listing:
            _with_casefold(conn)
            return Listing(list(conn.execute(page).all()), conn.execute(counted).scalar_one())

        return await self.db.run(work, write=False)

    async def idea(self, reference: str) -> Any | None:
        query = select(*_IDEA_COLUMNS).outerjoin(Resident, Resident.id == Idea.resident_id)
        async with self.db.read() as conn:
            return (await conn.execute(query.where(Idea.reference == reference.upper()))).first()

    async def idea_statuses(self, references: Sequence[str]) -> dict[str, str]:
        """The current status of each existing idea among ``references``."""
        query = select(Idea.reference, Idea.status).where(Idea.reference.in_([r.upper() for r in references]))
        async with self.db.read() as conn:
            return {row.reference: row.status for row in await conn.execute(query)}

    async def sources(self) -> list[str]:
        """Every source residents came from (campaign codes, partners), for the filter."""
        query = select(Resident.source).where(Resident.source.is_not(None)).distinct().order_by(Resident.source)
        async with self.db.read() as conn:
            return [s for s in (await conn.execute(query)).scalars() if s]

    # --- feedback comments ---------------------------------------------------------------------

    async def feedback(self, wanted: FeedbackFilter, limit: int, offset: int) -> Listing:
        where = wanted.conditions(self.db.is_sqlite)
        counted = select(func.count()).select_from(Feedback).where(*where)
        page = (
            select(Feedback.__table__)
            .where(*where)
            .order_by(Feedback.updated_at.desc(), Feedback.id.desc())
            .limit(limit)
            .offset(offset)
        )

        def work(conn: Connection) -> Listing:
            _with_casefold(conn)
            return Listing(list(conn.execute(page).all()), conn.execute(counted).scalar_one())

        return await self.db.run(work, write=False)

    async def feedback_item(self, feedback_id: int) -> Any | None:
        async with self.db.read() as conn:
            return (await conn.execute(select(Feedback.__table__).where(Feedback.id == feedback_id))).first()

    async def set_feedback(
        self, ids: Sequence[int], status: str | None = None, internal_note: str | None = None
    ) -> dict[int, str]:
        """Set the status (and/or the internal note: ``""`` clears it) of these comments; the
        status each had before, by id (ids that do not exist are left out)."""
        values: dict[str, Any] = {}
        if status is not None:
            values["status"] = status
        if internal_note is not None:
            values["internal_note"] = internal_note.strip() or None
        async with self.db.transaction() as conn:
            before = {
                row.id: row.status
                for row in await conn.execute(select(Feedback.id, Feedback.status).where(Feedback.id.in_(list(ids))))
            }
            if before and values:
                await conn.execute(update(Feedback).where(Feedback.id.in_(list(before))).values(**values))
        return before
