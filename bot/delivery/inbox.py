"""The inbox: processing strictly in order per resident, residents in parallel.

``InboxProcessor.receive`` hands a message over: it is stored durably (the
inbox repository commits concurrent requests together in one multi-row
INSERT, so a burst costs a few commits, not one per message), then the
messages of that (channel, address) are processed one after another in
arrival order — in the background, or before ``receive`` returns with
``wait=True`` (web chat, console). ``recover`` picks up whatever was stored
but not processed when a process stopped.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.exc import DBAPIError

from bot.service import ConversationService
from bot.values import Inbound

log = logging.getLogger(__name__)


Sender = tuple[str, str]  # (channel, address)


class StepBatches:
    """Steps of different senders share one read and one write transaction:
    each drain hands in its sender and waits until that sender's oldest waiting
    message is processed; what arrives while a batch runs forms the next one
    (at most ``max_batch``, so a write transaction stays short and a webhook
    never waits long for the writer)."""

    def __init__(self, service: ConversationService, max_batch: int = 64, parallel: int = 2) -> None:
        self.service = service
        self.max_batch = max_batch
        self._waiting: list[tuple[Sender, asyncio.Future[bool]]] = []
        self._running = 0
        self._parallel = parallel
        self._tasks: set[asyncio.Task[None]] = set()

    async def next_of(self, sender: Sender) -> bool:
        """Process the sender's oldest waiting message; False if none waits."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((sender, future))
        if self._running < self._parallel:
            self._running += 1
            task = asyncio.create_task(self._run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _run(self) -> None:
        try:
            while self._waiting:
                await asyncio.sleep(0)  # let the drains that are ready hand in theirs
                batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
                await self._one(batch)
        finally:
            self._running -= 1

    async def _one(self, batch: list[tuple[Sender, asyncio.Future[bool]]]) -> None:
        try:
            results = await self.service.process_senders([sender for sender, _ in batch])
        except (TimeoutError, DBAPIError, OSError, ConnectionError) as exc:
            for _, future in batch:  # the database is away: every drain hears of it and waits
                if not future.done():
                    future.set_exception(exc)
            return
        except Exception:  # noqa: BLE001 - find the poison message: one at a time
            if len(batch) > 1:
                for item in batch:
                    await self._one([item])
                return
            sender, future = batch[0]
            log.exception("processing the oldest message of a sender failed")
            if not future.done():
                future.set_exception(PoisonMessage(sender))
            return
        for sender, future in batch:
            if not future.done():
                future.set_result(results.get(sender, False))


class PoisonMessage(Exception):
    """Processing the sender's oldest message fails by itself."""

    def __init__(self, sender: Sender) -> None:
        super().__init__("processing failed")
        self.sender = sender


class InboxProcessor:
    def __init__(self, service: ConversationService) -> None:
        self.service = service
        self.inbox = service.inbox  # the service's repository: one group commit
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._batches = StepBatches(service)

    async def receive(self, inbound: Inbound, *, wait: bool = False) -> bool:
        """Store a message durably; False if it was seen before. A new one is
        processed in order after the sender's earlier messages: in the
        background, or before returning with ``wait``."""
        if await self.service.receive(inbound) is None:
            return False
        if wait:
            await self.drain(inbound.channel, inbound.address)
        else:
            self.submit(inbound.channel, inbound.address)
        return True

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
                while await self._next(key):
                    pass
        finally:
            if not lock.locked() and not getattr(lock, "_waiters", None):
                self._locks.pop(key, None)

    async def _next(self, sender: Sender) -> bool:
        """Process the sender's oldest message; False when none waits or the
        database is away (then the rest waits for the next recovery round)."""
        try:
            return await self._batches.next_of(sender)
        except (TimeoutError, DBAPIError, OSError, ConnectionError) as exc:
            log.warning("inbox messages wait: database unavailable (%s)", type(exc).__name__)
            return False
        except PoisonMessage:  # a poison message must not block the others
            ids = await self.inbox.pending_ids(*sender, limit=1)
            if ids:
                log.error("inbox message %s could not be processed; marked failed", ids[0])
                await self.service.mark_failed(ids[0], "processing error")
            return True

    def submit(self, channel: str, address: str) -> None:
        task = asyncio.create_task(self.drain(channel, address))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def recover(self, min_age: float = 0.0) -> int:
        """Process what was stored but not processed (by a process that died, or
        ``min_age`` seconds ago or longer: leave fresh ones to the web process)."""
        before = self.service.clock() - timedelta(seconds=min_age) if min_age else None
        keys = [k for k in await self.inbox.pending_senders(before) if k not in self._locks]
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
