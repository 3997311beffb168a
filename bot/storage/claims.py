"""Which process drains which sender's messages (PostgreSQL).

Several processes (``serve`` and any number of ``worker``s) take waiting
senders from the same inbox. Each process holds a session-level advisory lock
per sender it is draining, on a connection of its own: taking a list of
senders is one round trip (``pg_try_advisory_lock`` per key, skipping those
another process holds), and when a process dies its connection closes and
its senders are free for the others. On SQLite there is one process, so every
sender is free.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.db import Database

log = logging.getLogger(__name__)
Sender = tuple[str, str]
_KEY = "hashtextextended('claim:' || c || ':' || a, 0)"  # not the key the step's own lock uses
_PAIRS = "unnest(CAST(:c AS text[]), CAST(:a AS text[])) AS t(c, a)"
_TAKE = text(f"SELECT c, a FROM {_PAIRS} WHERE pg_try_advisory_lock({_KEY})")
_RELEASE = text(f"SELECT count(pg_advisory_unlock({_KEY})) FROM {_PAIRS}")


class SenderClaims:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._conn: AsyncConnection | None = None
        self._lock = asyncio.Lock()  # one connection: one statement at a time

    async def take(self, senders: list[Sender]) -> list[Sender]:
        """Those of the senders that no other process is draining, now ours."""
        if self.db.is_sqlite or not senders:
            return list(senders)
        try:
            async with self._lock:
                conn = await self._connection()
                rows = (await conn.execute(_TAKE, _params(senders))).all()
                await conn.commit()
        except Exception as exc:  # noqa: BLE001 - the connection is gone, and with it every claim
            log.warning("sender claims lost (%s); taking them again", type(exc).__name__)
            await self.close()
            raise
        return [(r.c, r.a) for r in rows]

    async def release(self, senders: list[Sender]) -> None:
        if self.db.is_sqlite or not senders or self._conn is None:
            return
        try:
            async with self._lock:
                conn = await self._connection()
                await conn.execute(_RELEASE, _params(senders))
                await conn.commit()
        except Exception as exc:  # noqa: BLE001 - a closed connection released them already
            log.warning("could not release sender claims (%s); closing their connection", type(exc).__name__)
            await self.close()

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            self._conn = await self.db.engine.connect()
            self.db.own_connections.add(self._conn)  # closed with the database if not before
        return self._conn

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self.db.own_connections.discard(conn)
            try:
                await conn.close()
            except Exception:  # noqa: BLE001
                pass


def _params(senders: list[Sender]) -> dict[str, Any]:
    return {"c": [c for c, _ in senders], "a": [a for _, a in senders]}
