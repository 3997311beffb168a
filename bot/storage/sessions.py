"""Sessions: where each resident is in a dialogue, saved with optimistic
concurrency (``version``). The stored JSON is read and written only through
:class:`bot.conversation.session.Dialogue`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.conversation.session import Dialogue
from bot.storage.db import Database
from bot.storage.models import Session


class Conflict(Exception):
    """The session changed under us; the step is run again."""


@dataclass(frozen=True)
class StoredSession:
    dialogue: Dialogue
    version: int


@dataclass(frozen=True)
class SessionSnapshot:
    """A session as reminders see it: the dialogue and when it last changed."""

    dialogue: Dialogue
    updated_at: datetime


class SessionRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def load(self, conn: AsyncConnection, resident_id: int) -> StoredSession | None:
        row = (
            await conn.execute(select(Session.state, Session.version).where(Session.resident_id == resident_id))
        ).first()
        return None if row is None else StoredSession(Dialogue.from_json(row.state), row.version)

    async def dialogue(self, conn: AsyncConnection, resident_id: int) -> Dialogue | None:
        """The stored dialogue alone (for erasing the media it refers to)."""
        state = (
            await conn.execute(select(Session.state).where(Session.resident_id == resident_id))
        ).scalar_one_or_none()
        return None if state is None else Dialogue.from_json(state)

    async def save(
        self, conn: AsyncConnection, resident_id: int, previous: StoredSession | None, dialogue: Dialogue, now: datetime
    ) -> None:
        """Insert the first session or update the one read; :class:`Conflict` if it changed meanwhile."""
        if previous is None:
            await conn.execute(
                insert(Session).values(resident_id=resident_id, state=dialogue.to_json(), version=1, updated_at=now)
            )
            return
        result = await conn.execute(
            update(Session)
            .where(Session.resident_id == resident_id, Session.version == previous.version)
            .values(state=dialogue.to_json(), version=previous.version + 1, updated_at=now)
        )
        if result.rowcount != 1:
            raise Conflict()

    async def of_residents(self, resident_ids: Iterable[int]) -> dict[int, SessionSnapshot]:
        ids = set(resident_ids)
        if not ids:
            return {}
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(Session.resident_id, Session.state, Session.updated_at).where(Session.resident_id.in_(ids))
                )
            ).all()
        return {r.resident_id: SessionSnapshot(Dialogue.from_json(r.state), r.updated_at) for r in rows}
