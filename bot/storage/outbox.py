"""The outbox table: every message to a resident, with its delivery state.

Replies are inserted in the conversation step's transaction; bulk messages
(broadcasts, reminders) in a few INSERT … SELECT statements whatever the
number of recipients, with an idempotency key so enqueuing twice sends once.
Senders claim small batches (``FOR UPDATE SKIP LOCKED`` on PostgreSQL), and
record the results of a batch in one transaction.

A row without a resident is a reply to someone who was just erased (the
goodbye after DELETE or a declined consent): it is sent like any other, and
once it reaches its final state (sent, failed, skipped, expired, or handed to
a pull channel) it keeps neither the address nor the text (:meth:`OutboxRepository.forget`);
a later delivery report still finds it by its provider id.

Rows name their recipient by the keyed hash of the address (``address``) and
carry it encrypted (``address_enc``, copied from the resident's identity or the
inbox row); only :meth:`OutboxRepository.claim` opens it, for the sender. An
address given from outside (a pull client, a failed recipient) is hashed here.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import String, and_, bindparam, cast, exists, func, insert, literal, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased
from sqlalchemy.sql import Select

from bot.storage.audience import Audience, audience_query
from bot.storage.crypto import WrongKey
from bot.storage.db import Database
from bot.storage.models import OutboundMessage
from bot.storage.residents import ResidentRepository
from bot.values import Outgoing, StatusUpdate

log = logging.getLogger(__name__)
__all__ = [
    "BULK",
    "FINAL",
    "REPLY",
    "STATUS_RANK",
    "Audience",
    "BulkResult",
    "Delivered",
    "OutboxRepository",
    "SentRecord",
]

REPLY, BULK = 0, 1  # priority: replies always go first
STATUS_RANK = {"queued": 1, "sending": 2, "accepted": 2, "sent": 3, "delivered": 4, "read": 5}
FINAL = {"failed", "undelivered"}
BULK_COLUMNS = [
    "resident_id",
    "channel",
    "address",
    "address_enc",
    "language",
    "text",
    "payload",
    "priority",
    "status",
    "attempts",
    "segments",
    "idempotency_key",
    "expires_at",
    "created_at",
]
Parts = Callable[[str, str], list[tuple[str, "int | None"]]]  # (channel, text) -> [(part, segments)]


@dataclass
class BulkResult:
    enqueued: dict[tuple[str, str], int] = field(default_factory=dict)  # (channel, language) -> messages
    without_text: dict[str, int] = field(default_factory=dict)  # language -> residents skipped

    @property
    def total(self) -> int:
        return sum(self.enqueued.values())


@dataclass(frozen=True)
class Delivered:
    """An outbox message handed to a pull channel (web chat, console)."""

    id: int
    text: str
    language: str | None
    direction: str
    choices: list[dict[str, str]]


@dataclass(frozen=True)
class SentRecord:
    """One message the provider accepted."""

    id: int
    provider_id: str | None
    attempts: int
    error: str | None
    segments: int | None


class Claimed(NamedTuple):
    """A claimed message, ``address`` opened for the channel's ``send``."""

    id: int
    address: str | None
    resident_id: int | None
    language: str | None
    text: str
    payload: dict[str, Any]
    attempts: int
    priority: int
    segments: int | None
    expires_at: datetime | None
    inbound_id: int | None


@functools.cache
def _claim_statement(channel: str, limit: int) -> Any:
    """Built once per channel and batch size (with ``:now`` bound at each claim): building
    this statement cost more than running it."""
    now = bindparam("now", type_=OutboundMessage.updated_at.type)
    o = aliased(OutboundMessage)
    earlier = aliased(OutboundMessage)
    blocked = exists().where(  # an earlier message to the same resident still waits or is in flight
        earlier.channel == o.channel,
        earlier.address == o.address,
        earlier.id < o.id,
        (earlier.status == "sending") | ((earlier.status == "pending") & (earlier.next_attempt_at > now)),
    )
    candidates = (
        select(o.id)
        .where(
            o.channel == channel,
            o.status == "pending",
            o.address.is_not(None),  # a row emptied while in flight (its resident erased) is not sent again
            (o.next_attempt_at.is_(None)) | (o.next_attempt_at <= now),
            ~blocked,
        )
        .order_by(o.priority, o.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (
        update(OutboundMessage)
        .where(OutboundMessage.id.in_(candidates.scalar_subquery()), OutboundMessage.status == "pending")
        .values(status="sending", updated_at=now)
        .returning(
            OutboundMessage.id,
            OutboundMessage.address_enc,
            OutboundMessage.resident_id,
            OutboundMessage.language,
            OutboundMessage.text,
            OutboundMessage.payload,
            OutboundMessage.attempts,
            OutboundMessage.priority,
            OutboundMessage.segments,
            OutboundMessage.expires_at,
            OutboundMessage.inbound_id,  # a reply to a message just received (inside any reply window)
        )
        .execution_options(synchronize_session=False)
    )


def _bulk_source(
    base: Any,
    lang: str,
    channel: str,
    text_lang: str,
    part: str,
    segments: int | None,
    key_prefix: str,
    payload: dict[str, Any],
    expires_at: datetime | None,
    now: datetime,
) -> Select[Any]:
    """One language's audience on one channel as outbox rows (see ``BULK_COLUMNS``) of one text part."""
    return select(
        base.c.resident_id,
        base.c.channel,
        base.c.address,
        base.c.address_enc,
        literal(text_lang),
        literal(part),
        literal(payload, OutboundMessage.payload.type),
        literal(BULK),
        literal("pending"),
        literal(0),
        literal(segments, OutboundMessage.segments.type),
        literal(key_prefix) + cast(base.c.identity_id, String),
        literal(expires_at, OutboundMessage.expires_at.type),
        literal(now, OutboundMessage.created_at.type),
    ).where(and_(base.c.language == lang, base.c.channel == channel))


_INSERT_REPLY = insert(OutboundMessage)
_TAKE_PENDING = (
    update(OutboundMessage)
    .where(
        OutboundMessage.channel == bindparam("b_channel"),
        OutboundMessage.address == bindparam("b_address"),
        OutboundMessage.status == "pending",
    )
    .values(status="delivered", sent_at=bindparam("b_now"), updated_at=bindparam("b_now"), attempts=1)
    .returning(
        OutboundMessage.id,
        OutboundMessage.text,
        OutboundMessage.language,
        OutboundMessage.payload,
        OutboundMessage.resident_id,
    )
)
_FORGET = (
    update(OutboundMessage)
    .where(OutboundMessage.id.in_(bindparam("ids", expanding=True)), OutboundMessage.resident_id.is_(None))
    .values(address=None, address_enc=None, text="", payload={})
)


class OutboxRepository:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.keys = db.keys
        self.residents = ResidentRepository(db)

    # -- replies and pull channels ------------------------------------------------------

    @staticmethod
    def reply_rows(
        outs: list[Outgoing],
        *,
        channel: str,
        address: str,
        sealed: str | None,
        resident_id: int | None,
        inbound_id: int,
        now: datetime,
    ) -> list[dict[str, Any]]:
        """The rendered replies to one inbound message as outbox rows (for :meth:`add_replies`);
        ``address`` and ``sealed`` as the inbox row has them (key and ``address_enc``)."""
        return [
            {
                "resident_id": resident_id,
                "channel": channel,
                "address": address,
                "address_enc": sealed,
                "language": out.language,
                "text": out.text,
                "payload": {
                    "direction": out.direction,
                    "choices": [{"value": c.value, "label": c.label} for c in out.choices],
                },
                "priority": REPLY,
                "status": "pending",
                "attempts": 0,
                "segments": out.segments,
                "inbound_id": inbound_id,
                "created_at": now,
            }
            for out in outs
        ]

    def add_replies(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """Replies (see :meth:`reply_rows`) in one executemany."""
        if rows:
            conn.execute(_INSERT_REPLY, rows)

    async def take_pending(self, channel: str, address: str, now: datetime) -> list[Delivered]:
        """Hand over (and mark delivered) the messages for one recipient of a pull channel."""
        values = {"b_channel": channel, "b_address": self.keys.index(channel, address), "b_now": now}

        def work(conn: Connection) -> list[Any]:
            rows = conn.execute(_TAKE_PENDING, values).all()
            self.forget(conn, [r.id for r in rows if r.resident_id is None])  # handed over: final
            return list(rows)

        rows = await self.db.run(work)
        return [
            Delivered(
                id=r.id,
                text=r.text,
                language=r.language,
                direction=(r.payload or {}).get("direction", "ltr"),
                choices=list((r.payload or {}).get("choices", [])),
            )
            for r in sorted(rows, key=lambda r: r.id)
        ]

    # -- senders --------------------------------------------------------------------------

    async def claim(self, channel: str, now: datetime, limit: int) -> list[Any]:
        """Up to ``limit`` due messages (``pending`` → ``sending``), in priority and id order,
        each with its address opened (the one place it is)."""
        stmt = _claim_statement(channel, limit)
        rows = await self.db.run(lambda conn: conn.execute(stmt, {"now": now}).all())
        claimed, unopened = [], []
        for r in rows:
            try:
                address = None if r.address_enc is None else self.keys.open(channel, r.address_enc)
            except WrongKey:
                unopened.append(r.id)
                continue
            claimed.append(Claimed(r.id, address, *r[2:]))
        if unopened:  # sealed with another DATA_KEY: it cannot reach anyone, and must not block the rest
            log.error("%d %s outbox messages could not be opened with this DATA_KEY", len(unopened), channel)
            failed = {"status": "failed", "error": "not sent: the address does not open with this DATA_KEY"}
            stmt_failed = (
                update(OutboundMessage).where(OutboundMessage.id.in_(unopened)).values(failed | {"updated_at": now})
            )
            await self.db.run(lambda conn: conn.execute(stmt_failed))
        return sorted(claimed, key=lambda r: (r.priority, r.id))

    async def sweep(self, channel: str, now: datetime, lease: timedelta) -> None:
        """Expired messages are dropped, claims older than the lease go back to the queue."""
        expire = (
            update(OutboundMessage)
            .where(
                OutboundMessage.channel == channel,
                OutboundMessage.status == "pending",
                OutboundMessage.expires_at <= now,
            )
            .values(status="expired", error="expired before it could be sent", updated_at=now)
        )
        release = (
            update(OutboundMessage)
            .where(
                OutboundMessage.channel == channel,
                OutboundMessage.status == "sending",
                OutboundMessage.updated_at < now - lease,
            )
            .values(status="pending", updated_at=now)
        )

        def work(conn: Connection) -> None:
            conn.execute(expire)
            conn.execute(release)

        await self.db.run(work)

    def record_sent(self, conn: Connection, sent: list[SentRecord], now: datetime) -> None:
        """Sent messages in one executemany, not one round trip per message."""
        if not sent:
            return
        conn.execute(
            update(OutboundMessage)
            .where(OutboundMessage.id == bindparam("b_id"))
            .values(
                status="sent",
                provider_id=bindparam("b_provider"),
                sent_at=now,
                updated_at=now,
                attempts=bindparam("b_attempts"),
                error=bindparam("b_error"),
                segments=func.coalesce(
                    bindparam("b_segments", type_=OutboundMessage.segments.type), OutboundMessage.segments
                ),
            ),
            [
                {
                    "b_id": r.id,
                    "b_provider": r.provider_id,
                    "b_attempts": r.attempts,
                    "b_error": r.error,
                    "b_segments": r.segments,
                }
                for r in sent
            ],
        )

    def forget(self, conn: Connection, message_ids: list[int]) -> None:
        """Of these messages in their final state, those without a resident (their resident
        was erased) keep neither address nor text from now on."""
        if message_ids:
            conn.execute(_FORGET, {"ids": message_ids})

    def record_outcome(self, conn: Connection, message_id: int, values: dict[str, Any]) -> None:
        """A message that was not sent: released, skipped, retried later or failed (``values`` are its columns)."""
        conn.execute(update(OutboundMessage).where(OutboundMessage.id == message_id).values(**values))

    def fail_remaining(self, conn: Connection, channel: str, address: str, reason: str, now: datetime) -> None:
        """Nothing more goes to someone who cannot or will not receive it (what has no
        resident any more is emptied too: failing is its final state)."""
        waiting = and_(
            OutboundMessage.channel == channel,
            OutboundMessage.address == self.keys.index(channel, address),
            OutboundMessage.status == "pending",
        )
        failed = {"status": "failed", "error": f"not sent: {reason}"[:200], "updated_at": now}
        conn.execute(
            update(OutboundMessage)
            .where(waiting, OutboundMessage.resident_id.is_(None))
            .values(failed | {"address": None, "address_enc": None, "text": "", "payload": {}})
        )
        conn.execute(update(OutboundMessage).where(waiting).values(failed))

    async def record_status(self, report: StatusUpdate, now: datetime) -> bool:
        """Apply a provider's delivery report, never moving a message backwards; False if the message is unknown."""

        def work(conn: Connection) -> bool:
            row = conn.execute(
                select(OutboundMessage.id, OutboundMessage.status, OutboundMessage.resident_id).where(
                    OutboundMessage.provider_id == report.provider_id
                )
            ).first()
            if row is None:
                return False
            if row.status in FINAL:
                return True
            if report.status not in FINAL and STATUS_RANK.get(report.status, 0) <= STATUS_RANK.get(row.status, 0):
                return True
            values: dict[str, Any] = {"status": report.status, "updated_at": now}
            if report.error:
                values["error"] = report.error[:200]
            conn.execute(update(OutboundMessage).where(OutboundMessage.id == row.id).values(**values))
            if report.opted_out and row.resident_id is not None:
                self.residents.mark_undeliverable(conn, row.resident_id, now, opted_out=True)
            return True

        return await self.db.run(work)

    # -- bulk -----------------------------------------------------------------------------

    async def enqueue_bulk(
        self,
        *,
        key: str,
        texts: dict[str, str],
        audience: Audience,
        channels: tuple[str, ...],
        parts: Parts,
        now: datetime,
        fallback: str | None = None,
        expires_at: datetime | None = None,
        directions: dict[str, str] | None = None,
    ) -> BulkResult:
        """``texts`` (language -> text) to the audience, one INSERT … SELECT per language,
        channel and part (``parts`` splits a text as the channel sends it); safe to call twice with one key."""
        result = BulkResult()
        base = audience_query(audience, channels).subquery()
        async with self.db.read() as conn:
            await self.db.plan_for_many(conn)
            counts = (await conn.execute(select(base.c.language, func.count()).group_by(base.c.language))).all()
        languages = {lang for lang, _ in counts if lang}
        for lang, n in counts:
            if lang not in texts and (fallback is None or fallback not in texts):
                result.without_text[lang or "?"] = n
        jobs: list[tuple[str, str, int, Select[Any]]] = []  # (channel, language, part number, rows)
        for lang in sorted(languages):
            text_lang = lang if lang in texts else fallback
            if text_lang is None or text_lang not in texts:
                continue
            direction = (directions or {}).get(text_lang, "ltr")
            for channel in channels:
                for part_no, (part, segments) in enumerate(parts(channel, texts[text_lang])):
                    source = _bulk_source(
                        base,
                        lang,
                        channel,
                        text_lang,
                        part,
                        segments,
                        f"{key}:{part_no}:",
                        {"direction": direction, "choices": []},
                        expires_at,
                        now,
                    )
                    jobs.append((channel, lang, part_no, source))
        for (channel, lang, part_no, _), inserted in zip(jobs, await self._insert_all(jobs), strict=True):
            if part_no == 0 and inserted:
                result.enqueued[(channel, lang)] = result.enqueued.get((channel, lang), 0) + inserted
        if not self.db.is_sqlite and result.total >= 1000:
            # fresh statistics at once, so the senders' claim query keeps its index plan
            # (autovacuum would get there only after a while; meanwhile every claim scans)
            async with self.db.transaction() as conn:
                await conn.execute(text("ANALYZE outbound_messages"))
        return result

    async def _insert_all(self, jobs: list[tuple[str, str, int, Select[Any]]]) -> list[int]:
        """Run the INSERT … SELECTs: on SQLite in one transaction; on PostgreSQL a few at a time in
        transactions of their own, so the server works on several at once (enqueuing again is safe:
        the idempotency key skips what is already there)."""
        if self.db.is_sqlite:
            async with self.db.transaction() as conn:
                return [await self._insert_bulk(conn, source) for *_, source in jobs]
        parallel = asyncio.Semaphore(8)

        async def one(source: Select[Any]) -> int:
            async with parallel, self.db.transaction() as conn:
                await self.db.plan_for_many(conn)
                return await self._insert_bulk(conn, source)

        return list(await asyncio.gather(*(one(source) for *_, source in jobs)))

    async def _insert_bulk(self, conn: AsyncConnection, source: Select[Any]) -> int:
        insert_ = sqlite.insert if self.db.is_sqlite else postgresql.insert
        stmt = (
            insert_(OutboundMessage)
            .from_select(BULK_COLUMNS, source)
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
        )
        return (await conn.execute(stmt)).rowcount

    async def progress(self, key: str) -> list[tuple[str, str, int]]:
        """(channel, status, messages) of one bulk key."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(OutboundMessage.channel, OutboundMessage.status, func.count())
                    .where(OutboundMessage.idempotency_key.like(f"{key}:%"))
                    .group_by(OutboundMessage.channel, OutboundMessage.status)
                )
            ).all()
        return [tuple(r) for r in rows]  # type: ignore[misc]

    async def queue_depth(self) -> list[tuple[str, int, int]]:
        """(channel, priority, messages) waiting or in flight."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(OutboundMessage.channel, OutboundMessage.priority, func.count())
                    .where(OutboundMessage.status.in_(("pending", "sending")))
                    .group_by(OutboundMessage.channel, OutboundMessage.priority)
                )
            ).all()
        return [tuple(r) for r in rows]  # type: ignore[misc]
