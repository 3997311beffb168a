"""Sessions: where each resident is in a dialogue, saved with optimistic
concurrency (``version``). The stored JSON is read and written only through
:class:`bot.conversation.session.Dialogue`."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.engine import Connection

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


# built once: executing a prepared statement skips building and hashing it anew
_LOAD_MANY = select(Session.resident_id, Session.state, Session.version).where(
    Session.resident_id.in_(bindparam("ids", expanding=True))
)
_INSERT = insert(Session)
_UPDATE = (
    update(Session)
    .where(Session.resident_id == bindparam("rid"), Session.version == bindparam("seen"))
    .values(state=bindparam("state"), version=bindparam("next"), updated_at=bindparam("now"))
)


_UPDATE_MANY_PG = text(
    "UPDATE sessions AS s SET state = CAST(v.state AS json), version = v.seen + 1, updated_at = :now"
    " FROM unnest(CAST(:rids AS bigint[]), CAST(:seen AS integer[]), CAST(:states AS text[])) AS v(rid, seen, state)"
    " WHERE s.resident_id = v.rid AND s.version = v.seen RETURNING s.resident_id"
).bindparams(bindparam("now", type_=Session.updated_at.type))


class SessionRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def load_many(self, conn: Connection, resident_ids: Iterable[int]) -> dict[int, StoredSession]:
        ids = list(set(resident_ids))
        if not ids:
            return {}
        rows = conn.execute(_LOAD_MANY, {"ids": ids}).all()
        return {r.resident_id: StoredSession(Dialogue.from_json(r.state), r.version) for r in rows}

    def load(self, conn: Connection, resident_id: int) -> StoredSession | None:
        return self.load_many(conn, [resident_id]).get(resident_id)

    def dialogue(self, conn: Connection, resident_id: int) -> Dialogue | None:
        """The stored dialogue alone (for erasing the media it refers to)."""
        stored = self.load(conn, resident_id)
        return None if stored is None else stored.dialogue

    def save_many(
        self, conn: Connection, saves: list[tuple[int, StoredSession | None, Dialogue]], now: datetime
    ) -> None:
        """Several residents' sessions in two executemany statements; :class:`Conflict` if any changed meanwhile."""
        fresh = [
            {"resident_id": rid, "state": d.to_json(), "version": 1, "updated_at": now}
            for rid, old, d in saves
            if old is None
        ]
        seen = [
            {"rid": rid, "seen": old.version, "next": old.version + 1, "state": d.to_json(), "now": now}
            for rid, old, d in saves
            if old is not None
        ]
        if fresh:
            conn.execute(_INSERT, fresh)
        if not seen:
            return
        if conn.dialect.supports_sane_multi_rowcount:  # SQLite: one executemany tells how many it updated
            if conn.execute(_UPDATE, seen).rowcount != len(seen):
                raise Conflict()
            return
        # asyncpg reports no row count for an executemany: one UPDATE … FROM unnest(…) for the
        # batch instead, whose RETURNING tells which sessions were still as we read them
        params = {
            "rids": [v["rid"] for v in seen],
            "seen": [v["seen"] for v in seen],
            "states": [json.dumps(v["state"]) for v in seen],
            "now": now,
        }
        if len(conn.execute(_UPDATE_MANY_PG, params).all()) != len(seen):
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
