"""The broadcasts table: each broadcast an organiser sent (from the dashboard or the CLI) with
its texts, audience and schedule. Its messages in the outbox carry its ``key`` at the start of
their idempotency keys (``KEY:PART:IDENTITY``), which is how progress and cancelling find them.

Queuing a scheduled broadcast and cancelling it are conditional updates (``queued_at IS NULL
AND cancelled_at IS NULL``), so two processes never both queue one, and a cancelled one is
never queued."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from bot.storage.accounts import record
from bot.storage.db import Database
from bot.storage.models import Broadcast, OutboundMessage, Partner, Resident

CANCELLED = "cancelled"  # the outbox status of a message whose broadcast was cancelled before it went out


@dataclass(frozen=True)
class BroadcastRecord:
    id: int
    key: str
    texts: dict[str, str]
    fallback: str | None
    audience: dict[str, Any]
    created_by: str
    created_at: datetime
    send_at: datetime | None
    queued_at: datetime | None
    cancelled_at: datetime | None
    total: int

    @property
    def scheduled(self) -> bool:
        """Waiting for its time (neither queued nor cancelled)."""
        return self.queued_at is None and self.cancelled_at is None


def _record(row: Any) -> BroadcastRecord:
    return BroadcastRecord(
        id=row.id,
        key=row.key,
        texts=dict(row.texts or {}),
        fallback=row.fallback,
        audience=dict(row.audience or {}),
        created_by=row.created_by,
        created_at=row.created_at,
        send_at=row.send_at,
        queued_at=row.queued_at,
        cancelled_at=row.cancelled_at,
        total=row.total or 0,
    )


def _messages_of(key: str) -> Any:
    return OutboundMessage.idempotency_key.like(f"{key}:%")


class BroadcastRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        *,
        key: str,
        texts: dict[str, str],
        fallback: str | None,
        audience: dict[str, Any],
        created_by: str,
        now: datetime,
        send_at: datetime | None,
        audit_detail: dict[str, Any] | None = None,
    ) -> tuple[int, bool]:
        """The broadcast's id and whether it is new: a second create with the same key (a double
        submit) returns the first one's id and records nothing. The audit entry goes in the
        same transaction."""

        def work(conn: Connection) -> tuple[int, bool]:
            found = conn.execute(select(Broadcast.id).where(Broadcast.key == key)).scalar_one_or_none()
            if found is not None:
                return found, False
            new_id = conn.execute(
                insert(Broadcast)
                .values(
                    key=key,
                    texts=texts,
                    fallback=fallback,
                    audience=audience,
                    created_by=created_by,
                    created_at=now,
                    send_at=send_at,
                    total=0,
                )
                .returning(Broadcast.id)
            ).scalar_one()
            record(conn, created_by, "broadcast.create", f"broadcast:{new_id}", audit_detail or {}, now)
            return new_id, True

        try:
            return await self.db.run(work)
        except Exception:  # two submits at once: the unique key let one in; that one is the broadcast
            found = await self.by_key(key)
            if found is None:
                raise
            return found.id, False

    async def get(self, broadcast_id: int) -> BroadcastRecord | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(Broadcast).where(Broadcast.id == broadcast_id))).first()
        return None if row is None else _record(row)

    async def by_key(self, key: str) -> BroadcastRecord | None:
        async with self.db.read() as conn:
            row = (await conn.execute(select(Broadcast).where(Broadcast.key == key))).first()
        return None if row is None else _record(row)

    async def newest(self, limit: int = 100, offset: int = 0) -> list[BroadcastRecord]:
        async with self.db.read() as conn:
            rows = (
                await conn.execute(select(Broadcast).order_by(Broadcast.id.desc()).limit(limit).offset(offset))
            ).all()
        return [_record(r) for r in rows]

    async def due(self, now: datetime) -> list[BroadcastRecord]:
        """Broadcasts whose time has come and that are neither queued nor cancelled."""
        async with self.db.read() as conn:
            rows = (
                await conn.execute(
                    select(Broadcast)
                    .where(
                        Broadcast.queued_at.is_(None),
                        Broadcast.cancelled_at.is_(None),
                        (Broadcast.send_at.is_(None)) | (Broadcast.send_at <= now),
                    )
                    .order_by(Broadcast.id)
                )
            ).all()
        return [_record(r) for r in rows]

    async def mark_queued(self, broadcast_id: int, total: int, now: datetime) -> bool:
        """Record that its messages are in the outbox (False if it was cancelled meanwhile)."""
        stmt = (
            update(Broadcast)
            .where(Broadcast.id == broadcast_id, Broadcast.cancelled_at.is_(None))
            .values(queued_at=func.coalesce(Broadcast.queued_at, now), total=total)
        )
        return bool(await self.db.run(lambda conn: conn.execute(stmt).rowcount))

    async def cancel(self, broadcast_id: int, actor: str, now: datetime) -> int | None:
        """Cancel: a scheduled broadcast is never queued, its messages still waiting in the outbox
        are never sent (status ``cancelled``; those already handed to a provider go on). The
        number of messages stopped, or None if there is no such broadcast. Audited."""

        def work(conn: Connection) -> int | None:
            key = conn.execute(select(Broadcast.key).where(Broadcast.id == broadcast_id)).scalar_one_or_none()
            if key is None:
                return None
            conn.execute(
                update(Broadcast)
                .where(Broadcast.id == broadcast_id, Broadcast.cancelled_at.is_(None))
                .values(cancelled_at=now)
            )
            stopped = conn.execute(
                update(OutboundMessage)
                .where(_messages_of(key), OutboundMessage.status == "pending")
                .values(status=CANCELLED, error="cancelled by an organiser", updated_at=now)
            ).rowcount
            record(conn, actor, "broadcast.cancel", f"broadcast:{broadcast_id}", {"stopped": stopped}, now)
            return stopped

        return await self.db.run(work)

    async def cancelled_since(self, since: datetime) -> list[str]:
        """Keys of the broadcasts cancelled after ``since``."""
        async with self.db.read() as conn:
            rows = await conn.execute(select(Broadcast.key).where(Broadcast.cancelled_at >= since))
            return list(rows.scalars())

    async def stop_pending(self, key: str, now: datetime) -> int:
        """Messages of a key still waiting → cancelled (a broadcast cancelled while it was being queued)."""
        stmt = (
            update(OutboundMessage)
            .where(_messages_of(key), OutboundMessage.status == "pending")
            .values(status=CANCELLED, error="cancelled by an organiser", updated_at=now)
        )
        return await self.db.run(lambda conn: conn.execute(stmt).rowcount)


async def known_sources(db: Database) -> list[tuple[str, str]]:
    """How residents arrived (``residents.source``) as (value, label): a partner's name for
    ``partner:CODE``, the campaign's name otherwise."""
    async with db.read() as conn:
        values = (
            await conn.execute(
                select(Resident.source).where(Resident.source.is_not(None)).distinct().order_by(Resident.source)
            )
        ).scalars()
        sources = [v for v in values if v]
        partners = dict((await conn.execute(select(Partner.code, Partner.name))).all())
    return [(v, partners.get(v.removeprefix("partner:"), v) if v.startswith("partner:") else v) for v in sources]
