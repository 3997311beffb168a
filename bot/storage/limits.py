"""What the abuse limits count (:mod:`bot.delivery.limits` decides): a sender's recent
messages in the inbox and the replies a resident got lately in the outbox.

Rows are found by resident and channel, never by address — a processed inbox row
keeps none. The marks the limits leave are the ``error`` column of the rows
themselves (a processed inbox row, a reply that was not sent), so the state is
durable and shared by every process on PostgreSQL without a table of its own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection

from bot.storage.models import InboundMessage, OutboundMessage, Resident

FLOOD_NOTICE = "flood: notice sent, cooling-off begins"
FLOOD_SKIPPED = "flood: not answered (cooling-off)"
LOOP_TRIPPED = "loop guard: the same reply again and again; replies paused"
LOOP_SKIPPED = "loop guard: not sent (replies paused)"

_MARK = (
    update(InboundMessage)
    .where(InboundMessage.id == bindparam("b_id"), InboundMessage.status == "done")
    .values(error=bindparam("b_error"))
)

Key = tuple[int, str]  # (resident id, channel)


def earlier_messages(conn: Connection, wanted: list[tuple[int, Key, datetime]], window: timedelta) -> dict[Key, int]:
    """For each (inbox id, (resident, channel), received_at): how many processed messages of that
    resident on that channel were received within ``window`` before it — one query."""
    if not wanted:
        return {}
    conditions = [
        and_(
            InboundMessage.resident_id == resident_id,
            InboundMessage.channel == channel,
            InboundMessage.id < inbox_id,
            InboundMessage.received_at > received_at - window,
        )
        for inbox_id, (resident_id, channel), received_at in wanted
    ]
    query = (
        select(InboundMessage.resident_id, InboundMessage.channel, func.count())
        .where(InboundMessage.status == "done", or_(*conditions))
        .group_by(InboundMessage.resident_id, InboundMessage.channel)
    )
    found: list[Any] = list(conn.execute(query).all())
    return {(int(r[0]), str(r[1])): int(r[2]) for r in found}


def last_flood_notices(conn: Connection, keys: list[Key], since: datetime) -> dict[Key, datetime]:
    """When each of these senders was last told to slow down (received_at of that message), since ``since``."""
    if not keys:
        return {}
    query = (
        select(InboundMessage.resident_id, InboundMessage.channel, func.max(InboundMessage.received_at))
        .where(
            InboundMessage.error == FLOOD_NOTICE,
            InboundMessage.received_at > since,
            or_(*[and_(InboundMessage.resident_id == r, InboundMessage.channel == c) for r, c in set(keys)]),
        )
        .group_by(InboundMessage.resident_id, InboundMessage.channel)
    )
    found: list[Any] = list(conn.execute(query).all())
    return {(int(r[0]), str(r[1])): _aware(r[2]) for r in found}


def mark_processed(conn: Connection, marks: list[tuple[int, str]]) -> None:
    """Note on processed inbox rows (id, mark) why they were not answered."""
    if marks:
        conn.execute(_MARK, [{"b_id": i, "b_error": error} for i, error in marks])


def recent_replies(conn: Connection, resident_ids: list[int], since: datetime) -> list[Any]:
    """The replies (priority 0) queued for these residents since ``since``: resident_id, channel,
    text, status, error, created_at — oldest first."""
    if not resident_ids:
        return []
    query = (
        select(
            OutboundMessage.resident_id,
            OutboundMessage.channel,
            OutboundMessage.text,
            OutboundMessage.status,
            OutboundMessage.error,
            OutboundMessage.created_at,
        )
        .where(
            OutboundMessage.resident_id.in_(sorted(set(resident_ids))),
            OutboundMessage.priority == 0,
            OutboundMessage.created_at > since,
        )
        .order_by(OutboundMessage.id)
    )
    return list(conn.execute(query).all())


def pseudonym(conn: Connection, resident_id: int) -> str:
    return conn.execute(select(Resident.pseudonym).where(Resident.id == resident_id)).scalar_one_or_none() or "?"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
