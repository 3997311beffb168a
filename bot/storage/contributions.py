"""Contributions: residents' ideas and their feedback on the draft."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from bot.storage.db import Database
from bot.storage.models import Feedback, Idea, Resident
from bot.values import Media


def _media_json(media: Sequence[Media]) -> list[dict[str, Any]]:
    return [{"kind": m.kind, "ref": m.ref, "mime": m.mime, "size": m.size} for m in media]


_INSERT_IDEA = insert(Idea)
_INSERT_FEEDBACK = insert(Feedback)


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
    ) -> None:
        conn.execute(
            _INSERT_FEEDBACK,
            {
                "resident_id": resident_id,
                "statement": statement,
                "rating": rating,
                "comment": comment,
                "media": _media_json(media),
                "language": language,
                "channel": channel,
                "created_at": now,
            },
        )

    def media_refs(self, conn: Connection, resident_id: int) -> list[str]:
        """The stored files of one resident's ideas and feedback."""
        media = list(conn.execute(select(Idea.media).where(Idea.resident_id == resident_id)).scalars())
        media += conn.execute(select(Feedback.media).where(Feedback.resident_id == resident_id)).scalars()
        return [m["ref"] for items in media for m in (items or [])]

    async def set_idea_status(self, reference: str, status: str) -> int | None:
        """Change an idea's status; the id of the resident who gave it, or None if there is no such idea."""
        async with self.db.transaction() as conn:
            row = (await conn.execute(select(Idea.id, Idea.resident_id).where(Idea.reference == reference))).first()
            if row is None:
                return None
            await conn.execute(update(Idea).where(Idea.id == row.id).values(status=status))
        return row.resident_id

    async def participants(self, starts: datetime, ends: datetime, *, ideas: bool, feedback: bool) -> set[int]:
        """Residents who gave an idea (``ideas``) or feedback (``feedback``) between the two times."""
        found: set[int] = set()
        async with self.db.read() as conn:
            for wanted, model in ((ideas, Idea), (feedback, Feedback)):
                if wanted:
                    query = select(model.resident_id).where(model.created_at >= starts, model.created_at <= ends)
                    found |= set((await conn.execute(query)).scalars())
        return found

    async def idea_records(self) -> list[Any]:
        """Every idea with its resident's pseudonym, oldest first."""
        return await self._with_pseudonym(Idea)

    async def feedback_records(self) -> list[Any]:
        """Every piece of feedback with its resident's pseudonym, oldest first."""
        return await self._with_pseudonym(Feedback)

    async def _with_pseudonym(self, model: type[Idea] | type[Feedback]) -> list[Any]:
        query = (
            select(model.__table__, Resident.pseudonym)
            .join(Resident, Resident.id == model.resident_id)
            .order_by(model.created_at, model.id)
        )
        async with self.db.read() as conn:
            return list((await conn.execute(query)).all())
