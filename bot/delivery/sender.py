"""The outbox sender: delivers pending messages through the provider channels.

- **One sender per channel.** Each channel has its own loop with its own rate
  limit (evenly paced sends; SMS counts segments). On PostgreSQL the loop runs
  only in the worker that holds the channel's advisory lock, so the limit
  holds in total however many workers run; when that worker dies its
  session ends, the lock is free and another worker takes over.
- **Claims with leases.** A batch is claimed in one statement (``pending`` →
  ``sending``, ``FOR UPDATE SKIP LOCKED`` on PostgreSQL); a claim older than
  the lease goes back to the queue, so a killed sender's messages are sent by
  the next one (at most the ones in flight are sent twice).
- **Order and priority.** A message is only claimed when no earlier message
  to the same resident is waiting for a retry or in flight; replies
  (priority 0) go before bulk; batches are small enough (half a second of the
  rate) that a reply never waits behind a long broadcast.
- **Failures.** Timeouts, 5xx and 429 are retried with exponential backoff
  and jitter, never before the provider's ``retry_after``; permanent
  failures end the message with the reason; nothing is retried forever, and
  a message past its ``expires_at`` is dropped, not sent late.
- **Reply window.** A channel whose capabilities have a ``reply_window``
  (WhatsApp: 24 hours after the resident's last message) sends outside it
  the language's approved template (its ``templates``), or nothing, with the
  reason recorded. A reply to a message just received is inside it by
  definition (the row names the inbound message), even when the resident
  was erased in the same step and their last message time went with them.
- **Erased residents.** A message without a resident (the goodbye after
  DELETE) is emptied — no address, no text — once it is sent or ends
  otherwise. Rates and what they count (messages or SMS segments)
  come from the capabilities, overridden by the settings.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.conversation.flows import FlowSet
from bot.delivery.pacing import EvenPacer, pacer_for
from bot.storage.db import Database
from bot.storage.outbox import FINAL, STATUS_RANK, OutboxRepository, SentRecord
from bot.storage.residents import ResidentRepository
from bot.values import Outgoing, OutgoingChoice, SendError, Sent, StatusUpdate
from channels.base import Channel

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 10
BASE_DELAY = 1.0
MAX_DELAY = 15 * 60.0
BUSY_BATCH = 20  # sends per batch without a rate limit while webhooks arrive
BUSY_PAUSE = 0.01  # seconds between batches then
LEASE = timedelta(seconds=float(os.environ.get("OUTBOX_LEASE_SECONDS") or 60))
Clock = Callable[[], datetime]


def backoff(attempts: int, rng: random.Random = random.Random()) -> float:
    """Exponential backoff with jitter: about 1, 2, 4 … seconds, capped at 15 minutes."""
    return rng.uniform(0.5, 1.0) * min(MAX_DELAY, BASE_DELAY * 2 ** max(0, attempts - 1))


@dataclass
class Result:
    row: Any
    sent: Sent | None = None
    error: SendError | None = None
    skipped: str | None = None
    template: bool = False


class ChannelSender:
    """Drains one channel's outbox."""

    def __init__(
        self,
        name: str,
        channel: Channel,
        db: Database,
        flows: FlowSet,
        clock: Clock,
        *,
        rate: float | None,
        metrics: Any = None,
        max_batch: int = 200,
        elect: bool = False,
    ) -> None:
        self.name = name
        self.channel = channel
        self.db = db
        self.outbox = OutboxRepository(db)
        self.residents = ResidentRepository(db)
        self.flows = flows
        self.clock = clock
        self.bucket = pacer_for(rate, channel.capabilities.rate_unit)
        self.rate = rate
        self.metrics = metrics
        self.busy: Callable[[], bool] = lambda: False  # webhooks arriving right now (acknowledgements first)
        self.max_batch = max_batch
        self.elect = elect
        self.wakeup = asyncio.Event()
        self._leader_conn: Any = None
        self._last_sweep = 0.0

    @property
    def batch(self) -> int:
        """What the pacer lets go at once (a second's allowance; half a second when evenly
        spaced): small enough that replies never wait long behind bulk."""
        if self.rate is None:
            return BUSY_BATCH if self.busy() else self.max_batch
        share = self.rate / 2 if isinstance(self.bucket, EvenPacer) else self.rate
        return max(1, min(self.max_batch, int(share)))

    # -- leadership (PostgreSQL) -------------------------------------------------------

    async def is_leader(self) -> bool:
        if not self.elect:
            return True
        try:
            if self._leader_conn is not None:
                await self.db.ping(self._leader_conn)
                return True
            conn = await self.db.try_session_lock(zlib.crc32(f"kiezstimme-sender:{self.name}".encode()))
            if conn is not None:
                self._leader_conn = conn
                log.info("this worker now sends the %s channel", self.name)
                return True
        except Exception:  # noqa: BLE001 - a lost connection means the lock is gone too
            log.warning("lost the %s sender lock; will try again", self.name)
            await self._resign()
        return False

    async def _resign(self) -> None:
        conn, self._leader_conn = self._leader_conn, None
        if conn is not None:
            try:
                await conn.close()
            except Exception:  # noqa: BLE001
                pass

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Claim, send, record — the next batch is claimed while one is still being
        sent, so the pacer never waits for the database between batches."""
        sending: asyncio.Task[None] | None = None
        try:
            while True:
                if self.busy():  # webhooks arriving: leave the process to their acknowledgements a moment
                    await asyncio.sleep(BUSY_PAUSE)
                claimed = 0
                try:
                    if await self.is_leader():
                        await self.sweep()
                        rows = await self.claim()
                        claimed = len(rows)
                        if sending is not None:  # one batch in flight while the next waits its turn
                            await self._finished(sending)
                            sending = None
                        if rows:
                            sending = asyncio.create_task(self._deliver(rows))
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - the sender outlives a database outage
                    log.exception("%s sender: drain failed; trying again shortly", self.name)
                    await self._resign()
                    await asyncio.sleep(1.0)
                if claimed == 0 and sending is not None:
                    await self._finished(sending)  # nothing more now: finish this batch, then look again
                    sending = None
                    continue
                if claimed == 0:
                    self.wakeup.clear()
                    try:
                        await asyncio.wait_for(self.wakeup.wait(), timeout=0.5)
                    except TimeoutError:
                        pass
        finally:
            if sending is not None:  # let the batch in flight finish and be recorded
                try:
                    await asyncio.wait_for(asyncio.shield(sending), timeout=10)
                except BaseException:  # noqa: BLE001 - leased rows go back to the queue anyway
                    sending.cancel()
            await self._resign()

    async def _finished(self, sending: asyncio.Task[None]) -> None:
        """Wait for a batch in flight; a failure is logged (its claims lapse and are sent again)."""
        try:
            await sending
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the next batch is already claimed and must not be lost
            log.exception("%s sender: a batch could not be recorded; its messages go back to the queue", self.name)

    async def sweep(self, force: bool = False) -> None:
        """Every few seconds: expired messages are dropped, lapsed claims released."""
        if not force and time.monotonic() - self._last_sweep < 5:
            return
        self._last_sweep = time.monotonic()
        await self.outbox.sweep(self.name, self.clock(), LEASE)

    async def claim(self) -> list[Any]:
        return await self.outbox.claim(self.name, self.clock(), self.batch)

    async def _deliver(self, rows: list[Any]) -> None:
        later = [r for r in rows if r.inbound_id is None]  # replies are inside the window anyway
        windows = await self._last_inbound(later) if self.window and later else {}
        queues: dict[str, list[Any]] = {}
        for row in rows:
            queues.setdefault(row.address, []).append(row)
        results: list[Result] = []
        await asyncio.gather(*(self._send_queue(q, windows, results) for q in queues.values()))
        await self._record(results)

    async def _send_queue(self, queue: list[Any], windows: dict[str, datetime | None], results: list[Result]) -> None:
        for i, row in enumerate(queue):
            result = await self._send_one(row, windows)
            results.append(result)
            if result.error is not None and not result.error.permanent:
                results.extend(Result(r, skipped="__release__") for r in queue[i + 1 :])
                return
            if result.error is not None and (result.error.unreachable or result.error.opted_out):
                results.extend(Result(r, error=result.error) for r in queue[i + 1 :])
                return

    @property
    def window(self) -> timedelta | None:
        return self.channel.capabilities.reply_window

    def _units(self, row: Any) -> float:
        """What one message costs the pacer: 1, or its segments where the rate counts segments."""
        return float(row.segments or 1) if self.channel.capabilities.rate_unit == "segment" else 1.0

    async def _last_inbound(self, rows: list[Any]) -> dict[str, datetime | None]:
        return await self.residents.last_inbound(self.name, {r.address for r in rows})

    def _outgoing(self, row: Any, windows: dict[str, datetime | None]) -> Outgoing | None:
        payload = row.payload or {}
        message = Outgoing(
            text=row.text,
            language=row.language,
            direction=payload.get("direction", "ltr"),
            choices=tuple(OutgoingChoice(c["value"], c["label"]) for c in payload.get("choices", [])),
        )
        if self.window is None or row.inbound_id is not None:
            return message  # a reply to a message just received is inside the window
        last = windows.get(row.address)
        if last is not None and self.clock() - last < self.window:
            return message
        caps = self.channel.capabilities
        template = (caps.templates(self.flows) if caps.templates else {}).get(row.language or "")
        return None if template is None else Outgoing(text=row.text, language=row.language, template=template)

    async def _send_one(self, row: Any, windows: dict[str, datetime | None]) -> Result:
        if row.expires_at is not None and row.expires_at <= self.clock():
            return Result(row, skipped="expired before it could be sent")
        message = self._outgoing(row, windows)
        if message is None:
            return Result(row, skipped=f"outside {self.channel.capabilities.window_label}, no template")
        answered = await self.bucket.take(self._units(row))
        started = time.monotonic()
        try:
            sent = await self.channel.send(row.address, message)
        except SendError as exc:
            if exc.retry_after:
                self.bucket.pause(exc.retry_after)
            return Result(row, error=exc)
        except Exception as exc:  # noqa: BLE001 - an unknown failure is retried, not lost
            log.exception("%s sender: unexpected error", self.name)
            return Result(row, error=SendError(f"unexpected: {type(exc).__name__}", permanent=False))
        finally:
            answered()
        if self.metrics is not None:
            self.metrics.send_latency.labels(self.name).observe(time.monotonic() - started)
        return Result(row, sent=sent, template=message.template is not None)

    async def _record(self, results: list[Result]) -> None:
        now = self.clock()
        sent = [
            SentRecord(
                id=r.row.id,
                provider_id=r.sent.provider_id,
                attempts=r.row.attempts + 1,
                error=f"sent as a template (outside {self.channel.capabilities.window_label})" if r.template else None,
                segments=r.sent.segments,
            )
            for r in results
            if r.sent is not None
        ]
        outcomes: list[tuple[Result, dict[str, Any]]] = []
        marks: list[tuple[Any, SendError]] = []
        final = [r.row.id for r in results if r.sent is not None and r.row.resident_id is None]
        for r in results:
            if r.sent is not None:
                continue
            values: dict[str, Any] = {"updated_at": now}
            if r.skipped == "__release__":
                values["status"] = "pending"
            elif r.skipped is not None:
                values.update(status="expired" if r.skipped.startswith("expired") else "skipped", error=r.skipped)
            else:
                values.update(self._failure(r.row, r.error, now))  # type: ignore[arg-type]
                if values["status"] == "failed" and (r.error.unreachable or r.error.opted_out):  # type: ignore[union-attr]
                    marks.append((r.row, r.error))  # type: ignore[arg-type]
            if values.get("status", "pending") != "pending" and r.row.resident_id is None:
                final.append(r.row.id)
            outcomes.append((r, values))

        def work(conn: Any) -> None:  # the whole batch in one transaction
            self.outbox.record_sent(conn, sent, now)  # one executemany, not a round trip per message
            for r, values in outcomes:
                self.outbox.record_outcome(conn, r.row.id, values)
            for row, error in marks:
                self._mark_resident(conn, row, error, now)
            self.outbox.forget(conn, final)  # the goodbye to an erased resident, done: no address, no text

        await self.db.run(work)
        self._count(len(sent), outcomes)

    def _count(self, sent: int, outcomes: list[tuple[Result, dict[str, Any]]]) -> None:
        if self.metrics is None:
            return
        if sent:
            self.metrics.outbound.labels(self.name, "sent").inc(sent)
        for r, values in outcomes:
            self.metrics.outbound.labels(self.name, values.get("status", "pending")).inc()
            if values.get("status") == "pending" and r.error is not None:
                self.metrics.retries.labels(self.name).inc()

    def _failure(self, row: Any, exc: SendError, now: datetime) -> dict[str, Any]:
        attempts = row.attempts + 1
        if exc.permanent or attempts >= MAX_ATTEMPTS:
            reason = exc.reason if exc.permanent else f"gave up after {attempts} attempts: {exc.reason}"
            log.info("%s outbox message %s failed for good: %s", self.name, row.id, reason)
            return {"status": "failed", "error": reason[:200], "attempts": attempts}
        delay = exc.retry_after if exc.retry_after else backoff(attempts)  # never before retry_after
        log.info("%s outbox message %s retried in %.1fs: %s", self.name, row.id, delay, exc.reason)
        return {
            "status": "pending",
            "attempts": attempts,
            "error": exc.reason[:200],
            "next_attempt_at": now + timedelta(seconds=delay),
        }

    def _mark_resident(self, conn: Any, row: Any, exc: SendError, now: datetime) -> None:
        if row.resident_id is not None:
            self.residents.mark_undeliverable(
                conn, row.resident_id, now, unreachable=exc.unreachable, opted_out=exc.opted_out
            )
        # nothing more goes to someone who cannot or will not receive it
        self.outbox.fail_remaining(conn, self.name, row.address, exc.reason, now)


class Sender:
    """All channel senders of one process."""

    def __init__(
        self,
        db: Database,
        channels: dict[str, Channel],
        flows: FlowSet,
        clock: Clock,
        *,
        rates: dict[str, float | None] | None = None,
        metrics: Any = None,
        elect: bool | None = None,
    ) -> None:
        rates = rates or {}
        elect = (not db.is_sqlite) if elect is None else elect
        self.senders = {
            name: ChannelSender(
                name,
                channel,
                db,
                flows,
                clock,
                metrics=metrics,
                elect=elect,
                rate=rates[name] if name in rates else channel.capabilities.rate,
            )
            for name, channel in channels.items()
        }
        self._tasks: list[asyncio.Task[None]] = []

    def yield_to(self, busy: Callable[[], bool]) -> None:
        """Let every channel sender step back while ``busy()`` (webhooks arriving)."""
        for sender in self.senders.values():
            sender.busy = busy

    def wake(self) -> None:
        for sender in self.senders.values():
            sender.wakeup.set()

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(s.run(), name=f"sender-{n}") for n, s in self.senders.items()]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks = []


__all__ = ["FINAL", "STATUS_RANK", "ChannelSender", "Sender", "backoff", "record_status"]


async def record_status(db: Database, clock: Clock, report: StatusUpdate) -> bool:
    """Apply a provider's delivery report; never moves a message backwards."""
    return await OutboxRepository(db).record_status(report, clock())
