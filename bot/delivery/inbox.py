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
from bot.storage.claims import SenderClaims
from bot.storage.faults import describe, is_data_error, is_unavailable
from bot.values import Inbound

log = logging.getLogger(__name__)


Sender = tuple[str, str]  # (channel, address)


class StepBatches:
    """Steps of different senders share one read and one write transaction:
    each drain hands in its sender and waits until that sender's oldest waiting
    message is processed; what arrives while a batch runs forms the next one
    (at most ``max_batch``, so a write transaction stays short and a webhook
    never waits long for the writer)."""

    # while webhooks keep arriving, processing takes at most this share of the time,
    # so acknowledgements stay fast while a backlog drains; with none arriving, all of it
    BUSY_SHARE = 0.2
    BUSY_WINDOW = 0.05  # seconds since the last webhook that count as "arriving"
    BUSY_BATCH = 16  # steps per batch meanwhile: the writer is never held long

    def __init__(self, service: ConversationService, max_batch: int = 64, parallel: int = 1) -> None:
        self.service = service
        self.last_arrival = 0.0
        self.max_batch = max_batch
        self._waiting: list[tuple[Sender, asyncio.Future[bool]]] = []
        self._running = 0
        self._parallel = parallel
        self._tasks: set[asyncio.Task[None]] = set()

    def busy(self) -> bool:
        """Webhooks are arriving right now."""
        return asyncio.get_running_loop().time() - self.last_arrival < self.BUSY_WINDOW

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
                loop = asyncio.get_running_loop()
                size = self.BUSY_BATCH if self.busy() else self.max_batch  # short write transactions while busy
                batch, self._waiting = self._waiting[:size], self._waiting[size:]
                started = loop.time()
                await self._one(batch)
                if self.busy():  # acknowledgements first
                    await asyncio.sleep((loop.time() - started) * (1 - self.BUSY_SHARE) / self.BUSY_SHARE)
        finally:
            self._running -= 1

    async def _one(self, batch: list[tuple[Sender, asyncio.Future[bool]]]) -> None:
        try:
            results = await self.service.process_senders([sender for sender, _ in batch])
        except Exception as exc:  # noqa: BLE001 - the database away, or a poison message
            if is_unavailable(exc):  # the database is away: every drain hears of it and waits
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                return
            if len(batch) > 1:  # find the poison message (a data error, a bug): one at a time
                for item in batch:
                    await self._one([item])
                return
            sender, future = batch[0]
            log.error("processing the oldest message of a sender failed", exc_info=not is_data_error(exc))
            if not future.done():
                future.set_exception(PoisonMessage(sender, describe(exc) if is_data_error(exc) else "processing error"))
            return
        for sender, future in batch:
            if not future.done():
                future.set_result(results.get(sender, False))


class PoisonMessage(Exception):
    """Processing the sender's oldest message fails by itself."""

    def __init__(self, sender: Sender, reason: str = "processing error") -> None:
        super().__init__("processing failed")
        self.sender = sender
        self.reason = reason  # kept with the message set aside (a data error names its kind)


class InboxProcessor:
    """Hands messages over (:meth:`receive`) and drains senders in order.

    Before draining a sender a process takes its claim (``SenderClaims``: on
    PostgreSQL an advisory lock per sender, so ``serve`` and the ``worker``s
    never drain the same resident at once; on SQLite every sender is ours).
    With ``web_only`` a process only stores and acknowledges (``serve`` on
    PostgreSQL when workers do the processing)."""

    def __init__(self, service: ConversationService, *, web_only: bool = False) -> None:
        self.service = service
        self.inbox = service.inbox  # the service's repository: one group commit
        self.web_only = web_only
        self.claims = SenderClaims(service.db)
        self._locks: dict[Sender, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._batches = StepBatches(service)
        self._active: dict[Sender, int] = {}  # drains running or waiting here, per claimed sender
        self._wanted: set[Sender] = set()
        self._to_release: set[Sender] = set()
        self._claimer: asyncio.Task[None] | None = None

    def busy(self) -> bool:
        """Webhooks are arriving right now (the sender steps back too)."""
        return self._batches.busy()

    async def receive(self, inbound: Inbound, *, wait: bool = False) -> bool:
        """Store a message durably; False if it was seen before. A new one is
        processed in order after the sender's earlier messages: in the
        background, or before returning with ``wait``."""
        self._batches.last_arrival = asyncio.get_running_loop().time()
        inbox_id = await self.service.receive(inbound)
        if inbox_id is None:
            return False
        sender = self.inbox.sender(inbound)  # (channel, keyed hash of the address), as the inbox names it
        if not wait:
            self.submit(*sender)
        elif sender in self._active or sender in await self._take([sender]):
            await self._drain_claimed(sender)
        else:  # another process drains this sender: wait until it has answered
            await self._processed_elsewhere(sender, inbox_id)
        return True

    def submit(self, channel: str, address: str) -> None:
        """Drain this sender soon (once this process holds its claim)."""
        if self.web_only:
            return
        self._wanted.add((channel, address))
        self._wake_claimer()

    def _wake_claimer(self) -> None:
        if self._claimer is None or self._claimer.done():
            self._claimer = asyncio.create_task(self._claim_wanted())

    async def _claim_wanted(self) -> None:
        """Release finished senders and claim wanted ones, each a single round trip."""
        while self._wanted or self._to_release:
            await asyncio.sleep(0)  # gather what this loop turn brought
            wanted, self._wanted = self._wanted, set()
            kept = wanted & self._to_release  # finished and wanted again: keep the claim
            self._to_release -= kept
            release, self._to_release = list(self._to_release), set()
            await self.claims.release(release)
            for sender in kept:
                self._spawn(sender)
            try:
                got = await self._take([s for s in wanted - kept if s not in self._active])
            except Exception:  # noqa: BLE001 - the database is away; recovery asks again
                log.warning("could not claim senders to drain; recovery will retry")
                continue
            for sender in got:
                self._spawn(sender)
            for sender in wanted - kept - set(got):
                if sender in self._active:
                    self._spawn(sender)  # already ours: one more drain, after the running one

    async def _take(self, senders: list[Sender]) -> list[Sender]:
        got = await self.claims.take(senders) if senders else []
        for sender in got:
            self._active.setdefault(sender, 0)
        return got

    def _spawn(self, sender: Sender) -> None:
        task = asyncio.create_task(self._drain_claimed(sender))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain_claimed(self, sender: Sender) -> None:
        self._active[sender] = self._active.get(sender, 0) + 1
        try:
            await self.drain(*sender)
        finally:
            self._active[sender] -= 1
            if self._active[sender] == 0:
                del self._active[sender]
                self._to_release.add(sender)
                self._wake_claimer()

    async def _processed_elsewhere(self, sender: Sender, inbox_id: int, timeout: float = 15.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while inbox_id in await self.inbox.pending_ids(*sender, limit=100):
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.05)

    def _lock(self, key: Sender) -> asyncio.Lock:
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
        except PoisonMessage as poison:  # set aside, never retried: it must not block the others
            ids = await self.inbox.pending_ids(*sender, limit=1)
            if ids:
                log.error("inbox message %s could not be processed (%s); marked failed", ids[0], poison.reason)
                await self.service.mark_failed(ids[0], poison.reason)
            return True

    async def recover(self, min_age: float = 0.0) -> int:
        """Drain what was stored but not processed (by a process that died, a web-only
        process, or ``min_age`` seconds ago or longer)."""
        before = self.service.clock() - timedelta(seconds=min_age) if min_age else None
        keys = [k for k in await self.inbox.pending_senders(before) if k not in self._active]
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
        while self._tasks or (self._claimer is not None and not self._claimer.done()):
            if self._claimer is not None and not self._claimer.done():
                await asyncio.gather(self._claimer, return_exceptions=True)
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        await self.idle()
        await self.claims.release(list(self._to_release))
        await self.claims.close()
