"""The SQL of the retention purge (:mod:`bot.participation.retention` decides what is
due): counting and emptying, in batches of short transactions, and the durable record
of what went (the ``purges`` table: when, which kind, how many — never what).

Each kind is one condition used both to count (the dry run) and to select the rows a
batch changes, so the dry run reports what the real run then does. Every batch
re-checks the condition in its UPDATE/DELETE, so a row that changed meanwhile (a
message claimed for sending) is left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, cast, delete, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from bot.storage.contributions import ContributionRepository
from bot.storage.db import Database
from bot.storage.models import ChannelIdentity, InboundMessage, OutboundMessage, Purge, Resident, Session
from bot.storage.residents import _media_refs
from bot.storage.sessions import SessionRepository

DELIVERY, INBOX, IDENTITIES, SESSIONS = "delivery", "inbox", "identities", "sessions"
_WAITING = ("pending", "sending")
_EXPIRED = "expired: kept longer than RETENTION_DELIVERY_DAYS"
_UNREACHABLE = "not sent: contact data removed after RETENTION_CONTACT_DAYS_AFTER_LAST_PHASE"


def _no_address(model: Any) -> dict[str, None]:
    """The values that empty a row's address: the address (its keyed hash) and, where the
    schema has it, the address encrypted."""
    return {name: None for name in ("address", "address_enc") if name in model.__table__.c}


def _has_address(model: Any) -> ColumnElement[bool]:
    return or_(*(model.__table__.c[name].is_not(None) for name in _no_address(model)))


def _holds(column: Any, *empty: str) -> ColumnElement[bool]:
    """A JSON column that still holds something (not SQL NULL, JSON null or an empty value)."""
    return and_(column.is_not(None), cast(column, String).not_in(("null", *empty)))


def _delivery_due(before: datetime) -> ColumnElement[bool]:
    """Delivery log rows older than ``before`` that still keep a text, choices or an address
    (a message being sent right now is left alone)."""
    return and_(
        OutboundMessage.created_at < before,
        OutboundMessage.status != "sending",
        or_(OutboundMessage.text != "", _has_address(OutboundMessage), _holds(OutboundMessage.payload, "{}")),
    )


def _inbox_due(before: datetime) -> ColumnElement[bool]:
    """Inbox rows older than ``before`` that are no longer waiting but still keep contents."""
    return and_(
        InboundMessage.received_at < before,
        InboundMessage.status != "pending",
        or_(_has_address(InboundMessage), _holds(InboundMessage.payload)),
    )


def _resident_due(before: datetime) -> ColumnElement[bool]:
    """Residents who last wrote (or, never having written, first came) before ``before``."""
    return func.coalesce(Resident.last_inbound_at, Resident.created_at) < before


class PurgeRepository:
    def __init__(self, db: Database, batch: int = 500) -> None:
        self.db = db
        self.batch = batch
        self.sessions = SessionRepository(db)
        self.contributions = ContributionRepository(db)

    # -- counting (the dry run) ---------------------------------------------------------

    async def count(
        self, delivery_before: datetime, inbox_before: datetime, contact_before: datetime | None
    ) -> dict[str, int]:
        """How many rows each kind would change now (contact kinds only when ``contact_before``)."""

        def work(conn: Connection) -> dict[str, int]:
            counts = {
                DELIVERY: _count(conn, OutboundMessage, _delivery_due(delivery_before)),
                INBOX: _count(conn, InboundMessage, _inbox_due(inbox_before)),
            }
            if contact_before is not None:
                due = select(Resident.id).where(_resident_due(contact_before))
                counts[IDENTITIES] = _count(conn, ChannelIdentity, ChannelIdentity.resident_id.in_(due))
                counts[SESSIONS] = _count(conn, Session, Session.resident_id.in_(due))
            return counts

        return await self.db.run(work, write=False)

    # -- emptying, one short transaction per batch -----------------------------------

    async def empty_delivery(self, before: datetime, now: datetime) -> int:
        """Delivery log rows older than ``before`` keep no text, choices or address; one still
        waiting to be sent is not sent any more (expired)."""

        def batch(conn: Connection, ids: list[int]) -> int:
            mine = and_(OutboundMessage.id.in_(ids), _delivery_due(before))
            empty: dict[str, Any] = {"text": "", "payload": {}, "updated_at": now} | _no_address(OutboundMessage)
            waiting = OutboundMessage.status == "pending"
            done = conn.execute(update(OutboundMessage).where(mine, ~waiting).values(empty)).rowcount
            expired = empty | {"status": "expired", "error": _EXPIRED}
            return done + conn.execute(update(OutboundMessage).where(mine, waiting).values(expired)).rowcount

        return await self._in_batches(OutboundMessage.id, _delivery_due(before), batch)

    async def empty_inbox(self, before: datetime) -> int:
        """Inbox rows older than ``before`` that are not waiting keep no contents or address."""

        def batch(conn: Connection, ids: list[int]) -> int:
            mine = and_(InboundMessage.id.in_(ids), _inbox_due(before))
            emptied = update(InboundMessage).where(mine).values(payload=None, **_no_address(InboundMessage))
            return conn.execute(emptied).rowcount

        return await self._in_batches(InboundMessage.id, _inbox_due(before), batch)

    async def remove_contact_data(self, before: datetime, now: datetime) -> tuple[int, int, list[str]]:
        """Channel identities and sessions of residents who last wrote before ``before`` go, and
        with them the addresses their delivery log rows still carry (what waited is not sent)
        and the provider ids of their inbox rows. Ideas and feedback stay, pseudonymous.
        Returns (identities, sessions, files only those sessions referred to — to unlink once
        committed)."""
        has_contact = or_(
            Resident.id.in_(select(ChannelIdentity.resident_id)), Resident.id.in_(select(Session.resident_id))
        )
        due = and_(_resident_due(before), has_contact)
        totals = [0, 0]
        files: list[str] = []

        def batch(conn: Connection, ids: list[int]) -> int:  # selected in this transaction
            for resident_id, stored in self.sessions.load_many(conn, ids).items():
                kept = set(self.contributions.media_refs(conn, resident_id))
                files.extend(ref for ref in _media_refs(stored.dialogue.vars) if ref not in kept)
            totals[0] += conn.execute(delete(ChannelIdentity).where(ChannelIdentity.resident_id.in_(ids))).rowcount
            totals[1] += conn.execute(delete(Session).where(Session.resident_id.in_(ids))).rowcount
            theirs = OutboundMessage.resident_id.in_(ids)
            waiting = OutboundMessage.status.in_(_WAITING)
            conn.execute(
                update(OutboundMessage)
                .where(theirs, waiting)
                .values(status="skipped", error=_UNREACHABLE, updated_at=now, **_no_address(OutboundMessage))
            )
            conn.execute(
                update(OutboundMessage)
                .where(theirs, ~waiting, _has_address(OutboundMessage))
                .values(updated_at=now, **_no_address(OutboundMessage))
            )
            conn.execute(
                update(InboundMessage)
                .where(InboundMessage.resident_id.in_(ids), InboundMessage.status != "pending")
                .values(
                    payload=None,
                    provider_id="purged-" + cast(InboundMessage.id, String),
                    **_no_address(InboundMessage),
                )
            )
            return len(ids)

        await self._in_batches(Resident.id, due, batch)
        return totals[0], totals[1], files

    async def _in_batches(
        self, key: Any, condition: ColumnElement[bool], change: Callable[[Connection, list[int]], int]
    ) -> int:
        """``change`` the rows meeting ``condition`` a batch at a time (ascending ids, each batch
        its own transaction); the rows changed."""
        total, last = 0, 0
        while True:
            query = select(key).where(condition, key > last).order_by(key).limit(self.batch)

            def work(conn: Connection, query: Any = query) -> tuple[int, int | None]:
                ids = list(conn.execute(query).scalars())
                return (change(conn, ids), ids[-1]) if ids else (0, None)

            changed, highest = await self.db.run(work)
            total += changed
            if highest is None:
                return total
            last = highest

    # -- the record --------------------------------------------------------------------

    async def record(self, ran_at: datetime, counts: dict[str, int], cutoffs: dict[str, datetime]) -> None:
        """One row per kind of this run: when, which kind, how many, the cut-off."""
        rows = [{"ran_at": ran_at, "kind": k, "count": counts[k], "cutoff": cutoffs[k]} for k in counts]
        if rows:
            await self.db.run(lambda conn: conn.execute(insert(Purge), rows))

    async def history(self, limit: int = 20) -> list[Any]:
        """The last records, newest first."""
        query = select(Purge).order_by(Purge.ran_at.desc(), Purge.id.desc()).limit(limit)
        return await self.db.run(lambda conn: list(conn.execute(query).all()), write=False)


def _count(conn: Connection, model: Any, condition: ColumnElement[bool]) -> int:
    return int(conn.execute(select(func.count()).select_from(model).where(condition)).scalar_one())
