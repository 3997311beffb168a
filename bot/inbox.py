"""Processing the inbox: strictly in order per resident, residents in parallel.

A webhook stores its message and returns; ``submit`` then makes sure the
messages of that (channel, address) are processed one after another in
arrival order. ``recover`` picks up whatever was stored but not processed
when the previous process stopped.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select

from bot.service import ConversationService
from bot.storage.models import InboundMessage

log = logging.getLogger(__name__)


class InboxProcessor:
    def __init__(self, service: ConversationService) -> None:
        self.service = service
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()

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
                        await self._process(inbox_id)
        finally:
            if not lock.locked() and not getattr(lock, "_waiters", None):
                self._locks.pop(key, None)

    async def _process(self, inbox_id: int) -> None:
        try:
            await self.service.process(inbox_id)
        except Exception:  # noqa: BLE001 - a poison message must not block the others
            log.exception("inbox message %s could not be processed; marked failed", inbox_id)
            await self.service.mark_failed(inbox_id, "processing error")

    def submit(self, channel: str, address: str) -> None:
        task = asyncio.create_task(self.drain(channel, address))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def recover(self) -> int:
        """Process what an earlier process stored but did not finish."""
        async with self.service.db.read() as conn:
            keys = (
                await conn.execute(
                    select(InboundMessage.channel, InboundMessage.address)
                    .where(InboundMessage.status == "pending")
                    .distinct()
                )
            ).all()
        for channel, address in keys:
            self.submit(channel, address)
        return len(keys)

    async def idle(self) -> None:
        """Wait until everything submitted so far is processed (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
