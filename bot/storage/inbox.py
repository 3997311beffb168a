"""The inbox table: every message a channel delivered, unique per provider id.

Storing uses group commit: concurrent requests are committed together in one
multi-row INSERT … ON CONFLICT DO NOTHING, so a burst costs a few commits, not
one per message. Once processed, a row keeps neither its text nor its address.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.storage.db import Database
from bot.storage.models import InboundMessage
from bot.values import Inbound

_PENDING = InboundMessage.status == "pending"


class InboxRepository:
    def __init__(self, db: Database, max_batch: int = 500) -> None:
        self.db = db
        self.max_batch = max_batch
        self._queue: list[tuple[dict[str, Any], asyncio.Future[int | None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    # -- storing (group commit) ---------------------------------------------------------

    async def store(self, inbound: Inbound, received_at: datetime) -> int | None:
        """Durably store one message; its inbox id, or None if it was seen before."""
        row = {
            "channel": inbound.channel,
            "provider_id": inbound.provider_id,
            "address": inbound.address,
            "payload": inbound.payload(),
            "status": "pending",
            "received_at": received_at,
        }
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._queue.append((row, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._queue:
            await asyncio.sleep(0)  # let requests that arrive meanwhile join this commit
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            try:
                ids = await self._insert([row for row, _ in batch])
            except Exception as exc:  # noqa: BLE001 - every waiting request hears of it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            taken: set[tuple[str, str]] = set()
            for row, future in batch:
                key = (row["channel"], row["provider_id"])
                inbox_id = ids.get(key) if key not in taken else None
                taken.add(key)
                if not future.done():
                    future.set_result(inbox_id)

    async def _insert(self, rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
        insert = sqlite.insert if self.db.is_sqlite else postgresql.insert
        stmt = (
            insert(InboundMessage)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["channel", "provider_id"])
            .returning(InboundMessage.id, InboundMessage.channel, InboundMessage.provider_id)
        )
        async with self.db.transaction() as conn:
            result = (await conn.execute(stmt)).all()
        return {(r.channel, r.provider_id): r.id for r in result}

    # -- reading --------------------------------------------------------------------------

    async def pending_ids(self, channel: str, address: str, limit: int = 20) -> list[int]:
        """The oldest pending messages of one sender, in arrival order."""
        async with self.db.read() as conn:
            ids = (
                (
                    await conn.execute(
                        select(InboundMessage.id)
                        .where(_PENDING, InboundMessage.channel == channel, InboundMessage.address == address)
                        .order_by(InboundMessage.id)
                        .limit(limit)
                    )
                )
                .scalars()
                .all()
            )
        return list(ids)

    async def pending(self, conn: AsyncConnection, inbox_id: int) -> Any | None:
        """The whole row, if it still waits to be processed."""
        return (await conn.execute(select(InboundMessage).where(InboundMessage.id == inbox_id, _PENDING))).first()

    async def pending_payload(self, inbox_id: int) -> Any | None:
        """(channel, payload) of a message still waiting, for fetching its media first."""
        async with self.db.read() as conn:
            return (
                await conn.execute(
                    select(InboundMessage.channel, InboundMessage.payload).where(
                        InboundMessage.id == inbox_id, _PENDING
                    )
                )
            ).first()

    async def pending_senders(self, received_before: datetime | None = None) -> list[tuple[str, str]]:
        """Every (channel, address) with messages waiting (received before the given time)."""
        query = select(InboundMessage.channel, InboundMessage.address).where(_PENDING)
        if received_before is not None:
            query = query.where(InboundMessage.received_at < received_before)
        async with self.db.read() as conn:
            return [(k.channel, k.address) for k in (await conn.execute(query.distinct())).all()]

    async def pending_count(self) -> int:
        async with self.db.read() as conn:
            return (await conn.execute(select(func.count()).select_from(InboundMessage).where(_PENDING))).scalar_one()

    # -- writing --------------------------------------------------------------------------

    async def set_payload(self, inbox_id: int, payload: dict[str, Any]) -> None:
        """Replace a waiting message's payload (its media was fetched)."""
        async with self.db.transaction() as conn:
            await conn.execute(
                update(InboundMessage).where(InboundMessage.id == inbox_id, _PENDING).values(payload=payload)
            )

    async def lock_pending(self, conn: AsyncConnection, inbox_id: int) -> bool:
        """True if the message still waits; on PostgreSQL a second processor waits here, then sees "done"."""
        still = (
            await conn.execute(
                select(InboundMessage.id).where(InboundMessage.id == inbox_id, _PENDING).with_for_update()
            )
        ).first()
        return still is not None

    async def mark_done(self, conn: AsyncConnection, inbox_id: int, now: datetime, resident_id: int | None) -> None:
        """Processed: the text and the address are not kept."""
        await conn.execute(
            update(InboundMessage)
            .where(InboundMessage.id == inbox_id)
            .values(status="done", processed_at=now, payload=None, address=None, resident_id=resident_id)
        )

    async def mark_failed(self, inbox_id: int, reason: str, now: datetime) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                update(InboundMessage)
                .where(InboundMessage.id == inbox_id, _PENDING)
                .values(status="failed", error=reason[:200], processed_at=now, payload=None, address=None)
            )
