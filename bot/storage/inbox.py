"""The inbox table: every message a channel delivered, unique per provider id.

Storing uses group commit: concurrent requests are committed together in one
multi-row INSERT … ON CONFLICT DO NOTHING, run as an *urgent* unit of work
(on SQLite it goes before any dialogue step waiting for the writer), so a
burst costs a few commits, not one per message, and acknowledgements never
queue behind processing. Once processed, a row keeps neither its text nor
its address; once its resident is erased, not even a link to them (see
:meth:`InboxRepository.forget`).

Addresses are stored as their keyed hash (``address``, by which senders are
named here: ``(channel, key)``) and encrypted (``address_enc``, copied to the
resident's identity and the replies, opened only to send); a provider id
that starts with the address (the web chat's ``client:message``) starts with
its hash instead (see :mod:`bot.storage.crypto`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from bot.storage.db import Database
from bot.storage.faults import describe, is_unavailable
from bot.storage.models import InboundMessage
from bot.values import Inbound, Rejected

log = logging.getLogger(__name__)
_PENDING = InboundMessage.status == "pending"
_PENDING_ROWS = select(InboundMessage).where(InboundMessage.id.in_(bindparam("ids", expanding=True)), _PENDING)
_MARK_DONE = (
    update(InboundMessage)
    .where(InboundMessage.id == bindparam("b_id"))
    .values(
        status="done",
        processed_at=bindparam("b_now"),
        payload=None,
        address=None,
        address_enc=None,
        resident_id=bindparam("b_rid"),
    )
)
MARK = 24  # how much of an address a provider id may start with (then its hash's start instead)


class InboxRepository:
    def __init__(self, db: Database, max_batch: int = 500) -> None:
        self.db = db
        self.keys = db.keys
        self.max_batch = max_batch
        self._queue: list[tuple[dict[str, Any], asyncio.Future[int | None]]] = []
        self._flusher: asyncio.Task[None] | None = None
        insert = sqlite.insert if db.is_sqlite else postgresql.insert
        self._insert_many = (
            insert(InboundMessage)
            .on_conflict_do_nothing(index_elements=["channel", "provider_id"])
            .returning(InboundMessage.id, InboundMessage.channel, InboundMessage.provider_id)
        )

    # -- storing (group commit) ---------------------------------------------------------

    def sender(self, inbound: Inbound) -> tuple[str, str]:
        """The message's sender as the inbox names it: (channel, keyed hash of the address)."""
        return inbound.channel, self.keys.index(inbound.channel, inbound.address)

    async def store(self, inbound: Inbound, received_at: datetime) -> int | None:
        """Durably store one message; its inbox id, or None if it was seen before."""
        key, sealed = self.keys.stored(inbound.channel, inbound.address)
        provider_id, start = inbound.provider_id, inbound.address[:MARK]
        if start and provider_id.startswith(start + ":"):  # the same message gives the same id: dedup holds
            provider_id = (key[:MARK] + provider_id[len(start) :])[:64]
        row = {
            "channel": inbound.channel,
            "provider_id": provider_id,
            "address": key,
            "address_enc": sealed,
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
        """Commit the waiting rows together. A batch that fails for something other than the
        database being away is committed again row by row: a row that can never be stored (a
        value too long, a NUL byte, text the driver cannot encode) is refused alone —
        ``Rejected`` (400), nothing of it stored — and every other row of the batch is stored.
        When the database is away every waiting request hears of it (and the provider retries)."""

        def deliver(batch: list[tuple[dict[str, Any], asyncio.Future[int | None]]], ids: dict[Any, int]) -> None:
            taken: set[tuple[str, str]] = set()
            for row, future in batch:
                key = (row["channel"], row["provider_id"])
                inbox_id = ids.get(key) if key not in taken else None
                taken.add(key)
                if not future.done():
                    future.set_result(inbox_id)

        def refuse(future: asyncio.Future[int | None], exc: BaseException) -> None:
            if future.done():
                return
            if is_unavailable(exc):
                future.set_exception(exc)
                return
            log.warning("an inbound message could not be stored and was refused: %s", describe(exc))
            future.set_exception(Rejected(400, "the message cannot be stored"))

        while self._queue:
            await asyncio.sleep(0)  # let requests that arrive meanwhile join this commit
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            rows = [row for row, _ in batch]
            try:
                ids = await self.db.run(functools.partial(self._insert, rows=rows), urgent=True)
            except Exception as exc:  # noqa: BLE001 - every waiting request hears of it
                if len(batch) == 1 or is_unavailable(exc):
                    for _, future in batch:
                        refuse(future, exc)
                    continue
                ids = {}
                for row, future in batch:  # find the row that cannot be stored; store the others
                    try:
                        ids |= await self.db.run(functools.partial(self._insert, rows=[row]), urgent=True)
                    except Exception as one:  # noqa: BLE001 - this request alone hears of it
                        refuse(future, one)
            deliver(batch, ids)

    def _insert(self, conn: Connection, rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
        # one statement, compiled once: SQLAlchemy's "insertmanyvalues" turns the executemany
        # into multi-row INSERTs with RETURNING, without compiling a new statement per batch size
        result = conn.execute(self._insert_many, rows)
        return {(r.channel, r.provider_id): r.id for r in result.all()}

    # -- reading --------------------------------------------------------------------------

    async def pending_ids(self, channel: str, address: str, limit: int = 20) -> list[int]:
        """The oldest pending messages of one sender (``address``: the key of :meth:`sender`), in arrival order."""
        query = (
            select(InboundMessage.id)
            .where(_PENDING, InboundMessage.channel == channel, InboundMessage.address == address)
            .order_by(InboundMessage.id)
            .limit(limit)
        )
        return await self.db.run(lambda conn: list(conn.execute(query).scalars()), write=False)

    def pending_rows(self, conn: Connection, inbox_ids: Iterable[int]) -> list[Any]:
        """The whole rows of those messages that still wait to be processed."""
        ids = list(inbox_ids)
        return list(conn.execute(_PENDING_ROWS, {"ids": ids}).all()) if ids else []

    def oldest_pending(self, conn: Connection, senders: list[tuple[str, str]]) -> list[Any]:
        """The oldest waiting message of each sender (whole rows), in one query."""
        if not senders:
            return []
        key = tuple_(InboundMessage.channel, InboundMessage.address)
        oldest = (
            select(func.min(InboundMessage.id))
            .where(_PENDING, key.in_(senders))
            .group_by(InboundMessage.channel, InboundMessage.address)
        )
        return list(conn.execute(select(InboundMessage).where(InboundMessage.id.in_(oldest))).all())

    async def pending_senders(self, received_before: datetime | None = None) -> list[tuple[str, str]]:
        """Every (channel, address) with messages waiting (received before the given time)."""
        query = select(InboundMessage.channel, InboundMessage.address).where(_PENDING)
        if received_before is not None:
            query = query.where(InboundMessage.received_at < received_before)
        rows = await self.db.run(lambda conn: conn.execute(query.distinct()).all(), write=False)
        return [(k.channel, k.address) for k in rows]

    async def pending_count(self) -> int:
        query = select(func.count()).select_from(InboundMessage).where(_PENDING)
        return await self.db.run(lambda conn: conn.execute(query).scalar_one(), write=False)

    # -- writing --------------------------------------------------------------------------

    async def set_payload(self, inbox_id: int, payload: dict[str, Any]) -> None:
        """Replace a waiting message's payload (its media was fetched)."""
        stmt = update(InboundMessage).where(InboundMessage.id == inbox_id, _PENDING).values(payload=payload)
        await self.db.run(lambda conn: conn.execute(stmt))

    def lock_pending(self, conn: Connection, inbox_ids: list[int]) -> set[int]:
        """Those of the messages that still wait; on PostgreSQL a second processor
        waits here for the rows, then sees them "done"."""
        query = select(InboundMessage.id).where(InboundMessage.id.in_(inbox_ids), _PENDING).order_by(InboundMessage.id)
        if not self.db.is_sqlite:
            query = query.with_for_update()
        return set(conn.execute(query).scalars())

    def mark_done(self, conn: Connection, done: list[tuple[int, int | None]], now: datetime) -> None:
        """Processed (inbox id, resident id): the text and the address are not kept."""
        if done:
            conn.execute(_MARK_DONE, [{"b_id": i, "b_rid": rid, "b_now": now} for i, rid in done])

    async def mark_failed(self, inbox_id: int, reason: str, now: datetime) -> None:
        stmt = (
            update(InboundMessage)
            .where(InboundMessage.id == inbox_id, _PENDING)
            .values(status="failed", error=reason[:200], processed_at=now, payload=None, address=None, address_enc=None)
        )
        await self.db.run(lambda conn: conn.execute(stmt))

    def forget(
        self, conn: Connection, resident_id: int, identities: Iterable[tuple[str, str]], inbound_id: int | None
    ) -> None:
        """An erased resident's messages (theirs, the one being processed, and failed ones from their
        addresses — ``identities`` as stored: keys) keep no address, text or link to them; a provider
        id that carries the address's key (the web chat's ``client:message``) is replaced, so the row
        cannot be traced back."""
        identities = list(identities)
        mine = [InboundMessage.resident_id == resident_id]
        if inbound_id is not None:
            mine.append(InboundMessage.id == inbound_id)
        for channel, address in identities:
            mine.append(
                (InboundMessage.status == "failed")
                & (InboundMessage.channel == channel)
                & InboundMessage.provider_id.contains(address[:24], autoescape=True)
            )
        rows = conn.execute(
            select(InboundMessage.id, InboundMessage.channel, InboundMessage.provider_id).where(or_(*mine))
        ).all()
        if not rows:
            return
        marks = {(channel, address[:24]) for channel, address in identities}
        conn.execute(
            update(InboundMessage)
            .where(InboundMessage.id == bindparam("b_id"))
            .values(
                address=None, address_enc=None, payload=None, resident_id=None, provider_id=bindparam("b_provider")
            ),
            [
                {
                    "b_id": r.id,
                    "b_provider": f"erased-{r.id}"
                    if any(c == r.channel and mark and mark in r.provider_id for c, mark in marks)
                    else r.provider_id,
                }
                for r in rows
            ],
        )
