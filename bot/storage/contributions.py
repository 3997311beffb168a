"""Contributions: residents' ideas and their feedback on the draft."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from bot.storage.db import Database
from bot.storage.models import Feedback, Idea, Resident
from bot.values import Media


def _media_json(media: Sequence[Media]) -> list[dict[str, Any]]:
    return [{"kind": m.kind, "ref": m.ref, "mime": m.mime, "size": m.size} for m in media]


def _refs(media: Any) -> list[str]:
    return [m["ref"] for m in (media or []) if m.get("ref")]


_INSERT_IDEA = insert(Idea)
_FEEDBACK_MEDIA = select(Feedback.media).where(
    Feedback.resident_id == bindparam("resident_id"), Feedback.statement == bindparam("statement")
)
_UPSERT_COLUMNS = ("rating", "comment", "media", "language", "channel", "updated_at")


def _upsert_feedback(dialect: Any) -> Any:
    """INSERT … ON CONFLICT (resident_id, statement) DO UPDATE: the current rating, first given at ``created_at``."""
    stmt = dialect.insert(Feedback)
    return stmt.on_conflict_do_update(
        index_elements=["resident_id", "statement"], set_={c: stmt.excluded[c] for c in _UPSERT_COLUMNS}
    )


_UPSERT_FEEDBACK = {"sqlite": _upsert_feedback(sqlite), "postgresql": _upsert_feedback(postgresql)}


class ContributionRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def store_idea(
        self,
        conn: Connection,
        *,
        resident_id: int,
        reference: str,
        text: str,
        topic: str,
        district: str | None,
        language: str,
        channel: str,
        media: Sequence[Media],
        now: datetime,
    ) -> None:
        conn.execute(
            _INSERT_IDEA,
            {
                "reference": reference,
                "resident_id": resident_id,
                "text": text,
                "topic": topic,
                "district": district,
                "language": language,
                "channel": channel,
                "media": _media_json(media),
                "status": "new",
                "created_at": now,
            },
        )

    def store_feedback(
        self,
        conn: Connection,
        *,
        resident_id: int,
        statement: str,
        rating: str,
        comment: str,
        language: str,
        channel: str,
        media: Sequence[Media],
        now: datetime,
    ) -> list[str]:
        """The resident's current rating of the statement (a repeat or a later comment updates
        it); the media files the update leaves without a reference, to unlink."""
        new_media = _media_json(media)
        before = conn.execute(_FEEDBACK_MEDIA, {"resident_id": resident_id, "statement": statement}).scalar()
        conn.execute(
            _UPSERT_FEEDBACK["sqlite" if self.db.is_sqlite else "postgresql"],
            {
                "resident_id": resident_id,
                "statement": statement,
                "rating": rating,
                "comment": comment,
                "media": new_media,
                "language": language,
                "channel": channel,
                "created_at": now,
                "updated_at": now,
            },
        )
        kept = set(_refs(new_media))
        return [ref for ref in _refs(before) if ref not in kept]

    def media_refs(self, conn: Connection, resident_id: int) -> list[str]:
        """The stored files of one resident's ideas and feedback."""
        media = list(conn.execute(select(Idea.media).where(Idea.resident_id == resident_id)).scalars())
        media += conn.execute(select(Feedback.media).where(Feedback.resident_id == resident_id)).scalars()
        return [ref for items in media for ref in _refs(items)]

    def erase(self, conn: Connection, resident_id: int, *, keep_ideas: bool) -> None:
        """A resident's contributions go (their files: :meth:`media_refs`); with ``keep_ideas`` their
        ideas stay as anonymous text — no resident, no media."""
        conn.execute(delete(Feedback).where(Feedback.resident_id == resident_id))
        ideas = Idea.resident_id == resident_id
        if keep_ideas:
            conn.execute(update(Idea).where(ideas).values(resident_id=None, media=[]))
        else:
            conn.execute(delete(Idea).where(ideas))

    async def set_idea_status(
        self,
        reference: str,
        status: str,
        *,
        public_note: str | None = None,
        internal_note: str | None = None,
        now: datetime | None = None,
    ) -> tuple[int, str] | None:
        """Change an idea's status (and, where given, its notes: ``""`` clears one, ``None``
        leaves it; ``now`` marks when it was moderated). The id of the resident who gave it (0
        when the idea is anonymous: its resident was erased) and the status it had before, or
        None if there is no such idea."""
        values: dict[str, Any] = {"status": status}
        if public_note is not None:
            values["public_note"] = public_note or None
        if internal_note is not None:
            values["internal_note"] = internal_note or None
        if now is not None:
            values["moderated_at"] = now
        async with self.db.transaction() as conn:
            query = select(Idea.id, Idea.resident_id, Idea.status).where(Idea.reference == reference)
            row = (await conn.execute(query)).first()
            if row is None:
                return None
            await conn.execute(update(Idea).where(Idea.id == row.id).values(**values))
        return row.resident_id or 0, row.status

    async def participants(self, starts: datetime, ends: datetime, *, ideas: bool, feedback: bool) -> set[int]:
        """Residents who gave an idea (``ideas``) or rated a statement (``feedback``) between the two times."""
        found: set[int] = set()
        async with self.db.read() as conn:
            if ideas:
                query = select(Idea.resident_id).where(Idea.created_at >= starts, Idea.created_at <= ends)
                found |= {rid for rid in (await conn.execute(query)).scalars() if rid is not None}  # not anonymous
            if feedback:
                query = select(Feedback.resident_id).where(
                    or_(
                        (Feedback.created_at >= starts) & (Feedback.created_at <= ends),
                        (Feedback.updated_at >= starts) & (Feedback.updated_at <= ends),
                    )
                )
                found |= set((await conn.execute(query)).scalars())
        return found

    async def idea_records(self) -> list[Any]:
        """Every idea with its resident's pseudonym (None for an anonymous idea), oldest first."""
        return await self._with_pseudonym(Idea)

    async def feedback_records(self) -> list[Any]:
        """Every piece of feedback with its resident's pseudonym, oldest first."""
        return await self._with_pseudonym(Feedback)

    async def _with_pseudonym(self, model: type[Idea] | type[Feedback]) -> list[Any]:
        query = (
            select(model.__table__, Resident.pseudonym)
            .outerjoin(Resident, Resident.id == model.resident_id)
            .order_by(model.created_at, model.id)
        )
        async with self.db.read() as conn:
            return list((await conn.execute(query)).all())
