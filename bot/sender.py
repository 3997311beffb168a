"""The outbox sender: delivers pending messages through the provider channels.

Each message is claimed with a conditional update (``pending`` → ``sending``)
so it is sent once; messages to one resident go out in order (a later one
waits while an earlier one is being retried); replies (priority 0) go before
bulk. Temporary failures are retried with exponential backoff and jitter,
honouring the provider's ``retry_after``; permanent ones end the message with
the reason, and a blocked bot or a carrier STOP is recorded on the resident.
WhatsApp messages outside the 24-hour window go out as an approved template,
or not at all, with the reason recorded.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy import and_, select, update

from bot.flows import FlowSet
from bot.storage.db import Database
from bot.storage.models import ChannelIdentity, OutboundMessage, Resident
from channels.base import Channel, Outgoing, OutgoingChoice, SendError

log = logging.getLogger(__name__)
WHATSAPP_WINDOW = timedelta(hours=24)
MAX_ATTEMPTS = 10
BASE_DELAY = 1.0
MAX_DELAY = 15 * 60.0
STALE_SENDING = timedelta(minutes=5)  # a claim older than this was lost with its process


def backoff(attempts: int, rng: random.Random = random.Random()) -> float:
    """Exponential backoff with full jitter: up to 1, 2, 4 … seconds, capped."""
    return rng.uniform(0.5, 1.0) * min(MAX_DELAY, BASE_DELAY * 2 ** max(0, attempts - 1))


class Sender:
    def __init__(
        self,
        db: Database,
        channels: dict[str, Channel],
        flows: FlowSet,
        clock: Callable[[], datetime],
        *,
        batch: int = 200,
        concurrency: int = 16,
    ) -> None:
        self.db = db
        self.channels = channels
        self.flows = flows
        self.clock = clock
        self.batch = batch
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self.channels and self._task is None:
            self._task = asyncio.create_task(self.run(), name="outbox-sender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def run(self) -> None:
        await self.release_stale_claims()
        while True:
            try:
                sent = await self.drain_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the sender must outlive a database hiccup
                log.exception("outbox drain failed; trying again shortly")
                sent = 0
            if sent == 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=1.0)
                except asyncio.TimeoutError:
                    pass

    async def release_stale_claims(self) -> None:
        """Messages a dead process had claimed go back to the queue."""
        async with self.db.transaction() as conn:
            await conn.execute(
                update(OutboundMessage)
                .where(
                    OutboundMessage.status == "sending",
                    OutboundMessage.updated_at < self.clock() - STALE_SENDING,
                )
                .values(status="pending")
            )

    async def drain_once(self) -> int:
        """Send what is due now; return how many messages were attempted."""
        now = self.clock()
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(
                        OutboundMessage.id,
                        OutboundMessage.channel,
                        OutboundMessage.address,
                        OutboundMessage.resident_id,
                        OutboundMessage.language,
                        OutboundMessage.text,
                        OutboundMessage.payload,
                        OutboundMessage.attempts,
                        OutboundMessage.next_attempt_at,
                        OutboundMessage.expires_at,
                        OutboundMessage.priority,
                        OutboundMessage.status,
                    )
                    .where(
                        OutboundMessage.status.in_(("pending", "sending")),
                        OutboundMessage.channel.in_(list(self.channels)),
                    )
                    .order_by(OutboundMessage.priority, OutboundMessage.id)
                    .limit(self.batch)
                )
            ).all()
        queues: dict[tuple[str, str], list[Any]] = {}
        blocked: set[tuple[str, str]] = set()
        for row in rows:
            key = (row.channel, row.address)
            if key in blocked:
                continue
            due = row.status == "pending" and (row.next_attempt_at is None or row.next_attempt_at <= now)
            if not due:
                blocked.add(key)  # keep this resident's order: later messages wait
                continue
            queues.setdefault(key, []).append(row)
        if not queues:
            return 0
        results = await asyncio.gather(*(self._send_queue(q) for q in queues.values()))
        return sum(results)

    async def _send_queue(self, queue: list[Any]) -> int:
        attempted = 0
        async with self._limit:
            for row in queue:
                attempted += 1
                if not await self._send_one(row):
                    break  # a retry later; the rest of this resident's messages wait
        return attempted

    async def _claim(self, row: Any) -> bool:
        async with self.db.transaction() as conn:
            result = await conn.execute(
                update(OutboundMessage)
                .where(OutboundMessage.id == row.id, OutboundMessage.status == "pending")
                .values(status="sending", updated_at=self.clock())
            )
        return result.rowcount == 1

    async def _finish(self, row: Any, **values: Any) -> None:
        values.setdefault("updated_at", self.clock())
        async with self.db.transaction() as conn:
            await conn.execute(update(OutboundMessage).where(OutboundMessage.id == row.id).values(**values))

    async def _outgoing(self, row: Any) -> Outgoing | None:
        payload = row.payload or {}
        message = Outgoing(
            text=row.text,
            language=row.language,
            direction=payload.get("direction", "ltr"),
            choices=tuple(OutgoingChoice(c["value"], c["label"]) for c in payload.get("choices", [])),
        )
        if row.channel != "whatsapp":
            return message
        async with self.db.read() as conn:
            last = (
                await conn.execute(
                    select(ChannelIdentity.last_inbound_at).where(
                        ChannelIdentity.channel == row.channel, ChannelIdentity.address == row.address
                    )
                )
            ).scalar_one_or_none()
        if last is not None and self.clock() - last < WHATSAPP_WINDOW:
            return message
        template = self.flows.whatsapp_templates.get(row.language or "")
        if template is None:
            return None
        return Outgoing(text=row.text, language=row.language, template=template)

    async def _send_one(self, row: Any) -> bool:
        """Send one message; True when it is done (sent or ended), False to retry later."""
        now = self.clock()
        if row.expires_at is not None and row.expires_at <= now:
            await self._finish(row, status="expired", error="expired before it could be sent")
            return True
        if not await self._claim(row):
            return True  # someone else has it
        message = await self._outgoing(row)
        if message is None:
            await self._finish(row, status="skipped", error="outside the WhatsApp 24-hour window, no template")
            return True
        channel = self.channels[row.channel]
        try:
            sent = await channel.send(row.address, message)
        except SendError as exc:
            return await self._failed(row, exc)
        except Exception as exc:  # noqa: BLE001 - an unknown failure is retried, not lost
            log.exception("unexpected error sending outbox message %s", row.id)
            return await self._failed(row, SendError(f"unexpected: {type(exc).__name__}", permanent=False))
        values: dict[str, Any] = {
            "status": "sent",
            "provider_id": sent.provider_id,
            "sent_at": self.clock(),
            "attempts": row.attempts + 1,
            "error": None,
        }
        if message.template:
            values["error"] = "sent as template (outside the WhatsApp window)"
        if sent.segments is not None:
            values["segments"] = sent.segments
        await self._finish(row, **values)
        return True

    async def _failed(self, row: Any, exc: SendError) -> bool:
        attempts = row.attempts + 1
        if exc.permanent or attempts >= MAX_ATTEMPTS:
            reason = exc.reason if exc.permanent else f"gave up after {attempts} attempts: {exc.reason}"
            await self._finish(row, status="failed", error=reason[:200], attempts=attempts)
            if exc.unreachable or exc.opted_out:
                await self._mark_resident(row, exc)
            log.info("outbox message %s failed for good: %s", row.id, exc.reason)
            return True
        delay = exc.retry_after if exc.retry_after is not None else backoff(attempts)
        await self._finish(
            row,
            status="pending",
            attempts=attempts,
            error=exc.reason[:200],
            next_attempt_at=self.clock() + timedelta(seconds=delay),
        )
        log.info("outbox message %s will be retried in %.1fs: %s", row.id, delay, exc.reason)
        return False

    async def _mark_resident(self, row: Any, exc: SendError) -> None:
        if row.resident_id is None:
            return
        values: dict[str, Any] = {}
        if exc.unreachable:
            values["unreachable_at"] = self.clock()
        if exc.opted_out:
            values["stopped_at"] = self.clock()
        async with self.db.transaction() as conn:
            await conn.execute(update(Resident).where(Resident.id == row.resident_id).values(**values))
            # nothing more goes to someone who cannot or will not receive it
            await conn.execute(
                update(OutboundMessage)
                .where(
                    and_(
                        OutboundMessage.channel == row.channel,
                        OutboundMessage.address == row.address,
                        OutboundMessage.status == "pending",
                    )
                )
                .values(status="failed", error=f"not sent: {exc.reason}"[:200], updated_at=self.clock())
            )


STATUS_RANK = {"queued": 1, "sending": 2, "accepted": 2, "sent": 3, "delivered": 4, "read": 5}
FINAL = {"failed", "undelivered"}


async def record_status(db: Database, clock: Callable[[], datetime], provider_id: str, status: str, error_code: str | None) -> bool:
    """Apply a provider's status callback; never moves a message backwards."""
    async with db.transaction() as conn:
        row = (
            await conn.execute(
                select(OutboundMessage.id, OutboundMessage.status, OutboundMessage.resident_id).where(
                    OutboundMessage.provider_id == provider_id
                )
            )
        ).first()
        if row is None:
            return False
        if status not in FINAL and STATUS_RANK.get(status, 0) <= STATUS_RANK.get(row.status, 0):
            return True
        if row.status in FINAL:
            return True
        values: dict[str, Any] = {"status": status, "updated_at": clock()}
        if error_code:
            values["error"] = _callback_error(error_code)
        await conn.execute(update(OutboundMessage).where(OutboundMessage.id == row.id).values(**values))
        if error_code == "21610" and row.resident_id is not None:
            await conn.execute(update(Resident).where(Resident.id == row.resident_id).values(stopped_at=clock()))
    return True


def _callback_error(code: str) -> str:
    known = {
        "21610": "21610 unsubscribed at the carrier (STOP)",
        "63016": "63016 outside the WhatsApp 24-hour window",
        "30007": "30007 filtered as spam by the carrier",
        "30003": "30003 unreachable handset",
        "30005": "30005 unknown or inactive number",
        "30006": "30006 landline or unreachable carrier",
    }
    return known.get(code, f"{code} delivery failed")
