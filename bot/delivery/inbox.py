"""The inbox: durable storage with group commit, and processing strictly in
order per resident, residents in parallel.

A webhook stores its message (``InboxWriter.store``: concurrent requests are
committed together in one multi-row INSERT, so a burst costs a few commits,
not one per message) and returns; ``InboxProcessor.submit`` then makes sure
the messages of that (channel, address) are processed one after another in
arrival order. ``recover`` picks up whatever was stored but not processed
when a process stopped.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.dialects import postgresql, sqlite

from bot.service import ConversationService
from bot.storage.db import Database
from bot.storage.models import InboundMessage

log = logging.getLogger(__name__)


class InboxWriter:
    """Group commit for inbound messages."""

    def __init__(self, db: Database, max_batch: int = 500) -> None:
        self.db = db
        self.max_batch = max_batch
        self._queue: list[tuple[dict[str, Any], asyncio.Future[int | None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def store(self, row: dict[str, Any]) -> int | None:
        """Durably store one message; its inbox id, or None if seen before."""
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


class InboxProcessor:
    def __init__(self, service: ConversationService) -> None:
        self.service = service
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # a few steps at a time: acknowledging webhooks must not starve behind a backlog
        self._working = asyncio.Semaphore(8)

    def _lock(self, key: tuple[str, str]) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def drain(self, channel: str, address: str) -> None:
        """Process every pending message of one recipient, oldest first."""
        key = (channel, address)
        lock = self._lock(key)
        try:
            async with lock:
                while True:
                    async with self.service.db.read() as conn:
                        ids = (
                            await conn.execute(
                                select(InboundMessage.id)
                                .where(
                                    InboundMessage.status == "pending",
                                    InboundMessage.channel == channel,
                                    InboundMessage.address == address,
                                )
                                .order_by(InboundMessage.id)
                                .limit(20)
                            )
                        ).scalars().all()
                    if not ids:
                        return
                    for inbox_id in ids:
                        if not await self._process(inbox_id):
                            return  # keep the order: the rest waits for the next recovery round
        finally:
            if not lock.locked() and not getattr(lock, "_waiters", None):
                self._locks.pop(key, None)

    async def _process(self, inbox_id: int) -> bool:
        """Process one message; False when the database is away (try again later)."""
        try:
            async with self._working:
                await self.service.process(inbox_id)
        except (DBAPIError, OSError, ConnectionError, asyncio.TimeoutError) as exc:
            log.warning("inbox message %s waits: database unavailable (%s)", inbox_id, type(exc).__name__)
            return False
        except Exception:  # noqa: BLE001 - a poison message must not block the others
            log.exception("inbox message %s could not be processed; marked failed", inbox_id)
            await self.service.mark_failed(inbox_id, "processing error")
        return True

    def submit(self, channel: str, address: str) -> None:
        task = asyncio.create_task(self.drain(channel, address))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def recover(self, min_age: float = 0.0) -> int:
        """Process what was stored but not processed (by a process that died, or
        ``min_age`` seconds ago or longer: leave fresh ones to the web process)."""
        query = select(InboundMessage.channel, InboundMessage.address).where(InboundMessage.status == "pending")
        if min_age:
            query = query.where(InboundMessage.received_at < self.service.clock() - timedelta(seconds=min_age))
        async with self.service.db.read() as conn:
            keys = (await conn.execute(query.distinct())).all()
        keys = [k for k in keys if (k.channel, k.address) not in self._locks]
        for channel, address in keys:
            self.submit(channel, address)
        return len(keys)

    async def keep_recovering(self, interval: float = 5.0, min_age: float = 5.0) -> None:
        """Run recovery every few seconds (stragglers after a database outage or a crash)."""
        while True:
            try:
                await self.recover(min_age=min_age)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the database may be away; try again
                log.warning("inbox recovery failed; trying again", exc_info=True)
            await asyncio.sleep(interval)

    async def idle(self) -> None:
        """Wait until everything submitted so far is processed (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
