"""Residents and the channel identities they reach us through: lookup and
creation on first contact, profile changes with consent records, reachability,
and erasure (nothing that names or reaches the resident stays: see
:meth:`ResidentRepository.erase`).

An address given here (``address``) is what the provider calls the resident; it
is hashed on the way in. A ``key`` is that hash, as inbox rows carry it, and
``sealed`` the address encrypted (see :mod:`bot.storage.crypto`)."""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, insert, or_, select, text, update
from sqlalchemy.engine import Connection

from bot.conversation.session import Profile
from bot.storage.contributions import ContributionRepository
from bot.storage.db import Database
from bot.storage.inbox import InboxRepository
from bot.storage.models import ChannelIdentity, Consent, OutboundMessage, Resident
from bot.storage.profiles import ProfileRepository, described
from bot.storage.sessions import SessionRepository

log = logging.getLogger(__name__)


def new_pseudonym() -> str:
    return "r-" + "".join(secrets.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(12))


_BY_IDENTITY = (
    select(
        Resident.__table__,
        ChannelIdentity.id.label("identity_id"),
        ChannelIdentity.address.label("address"),
        described().label("described"),  # told us who speaks: not asked again
    )
    .join(ChannelIdentity, ChannelIdentity.resident_id == Resident.id)
    .where(
        ChannelIdentity.channel == bindparam("channel"),
        ChannelIdentity.address.in_(bindparam("addresses", expanding=True)),
    )
)
_INSERT_RESIDENT = insert(Resident).returning(Resident.id)
_INSERT_IDENTITY = insert(ChannelIdentity)
_INSERT_CONSENT = insert(Consent)
_TOUCH_IDENTITY = (
    update(ChannelIdentity).where(ChannelIdentity.id == bindparam("iid")).values(last_inbound_at=bindparam("now"))
)
_ADVISORY_LOCKS = text(
    "SELECT count(pg_advisory_xact_lock(hashtextextended(k, 0)))"
    " FROM (SELECT k FROM unnest(CAST(:keys AS text[])) AS k ORDER BY k) AS ordered"
)


@functools.cache
def _update_resident(columns: tuple[str, ...]) -> Any:
    """An UPDATE of these columns, built once per set of columns."""
    return update(Resident).where(Resident.id == bindparam("rid")).values({c: bindparam(f"v_{c}") for c in columns})


class ResidentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.keys = db.keys
        self.sessions = SessionRepository(db)
        self.contributions = ContributionRepository(db)
        self.inbox = InboxRepository(db)

    def find_many(self, conn: Connection, channel: str, keys: Iterable[str]) -> dict[str, Any]:
        """key (an inbox row's ``address``) -> the resident (all columns and ``identity_id``)
        behind it, for the known ones."""
        wanted = list(set(keys))
        if not wanted:
            return {}
        rows = conn.execute(_BY_IDENTITY, {"channel": channel, "addresses": wanted}).all()
        return {r.address: r for r in rows}

    def find(self, conn: Connection, channel: str, address: str) -> Any | None:
        """The resident (all columns and ``identity_id``) behind an address, or None."""
        key = self.keys.index(channel, address)
        return self.find_many(conn, channel, [key]).get(key)

    def create(self, conn: Connection, channel: str, address: str, now: datetime) -> Any:
        """First contact: a resident and their channel identity (a race ends in IntegrityError)."""
        return self.create_stored(conn, channel, *self.keys.stored(channel, address), now)

    def create_stored(self, conn: Connection, channel: str, key: str, sealed: str, now: datetime) -> Any:
        """:meth:`create` from an inbox row's ``address`` (the key) and ``address_enc`` (sealed)."""
        resident_id = conn.execute(
            _INSERT_RESIDENT,
            {"pseudonym": new_pseudonym(), "created_at": now, "last_inbound_at": now, "updates_opt_in": False},
        ).scalar_one()
        conn.execute(
            _INSERT_IDENTITY,
            {"resident_id": resident_id, "channel": channel, "address": key, "address_enc": sealed, "created_at": now},
        )
        return self.find_many(conn, channel, [key]).get(key)

    def lock_many(self, conn: Connection, senders: list[tuple[str, str]]) -> None:
        """One step at a time per resident (``senders``: (channel, key)), across processes
        (PostgreSQL; SQLite has one writer anyway): the transaction's locks for all the batch's
        residents in one statement, taken in one order so that two batches never wait for each
        other in a circle."""
        if not self.db.is_sqlite and senders:
            conn.execute(_ADVISORY_LOCKS, {"keys": sorted(f"{c}:{a}" for c, a in senders)})

    def add_consent(self, conn: Connection, resident_id: int, version: str, now: datetime) -> None:
        conn.execute(_INSERT_CONSENT, {"resident_id": resident_id, "version": version, "given_at": now})

    def profile_changes(
        self,
        resident: Any,
        profile: Profile,
        now: datetime,
        *,
        consent_version: str | None = None,
        source: str | None = None,
    ) -> dict[str, Any]:
        """The columns to store of a changed profile; they wrote to us, so they are reachable again."""
        values: dict[str, Any] = {"last_inbound_at": now}
        if source and not resident.source:
            values["source"] = source[:64]  # where they came from, e.g. a poster's deep link
        if resident.unreachable_at is not None:
            values["unreachable_at"] = None
        if profile.language != resident.language:
            values["language"] = profile.language
        if profile.stopped != (resident.stopped_at is not None):
            values["stopped_at"] = now if profile.stopped else None
        if profile.updates != resident.updates_opt_in:
            values["updates_opt_in"] = profile.updates
        if consent_version is not None:
            values["consented_at"] = now
            values["consent_version"] = consent_version
        return values

    def save_profiles(self, conn: Connection, changes: list[tuple[int, dict[str, Any]]]) -> None:
        """Profile changes of several residents: one executemany per set of changed columns."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for resident_id, values in changes:
            key = tuple(sorted(values))
            groups.setdefault(key, []).append({"rid": resident_id} | {f"v_{k}": v for k, v in values.items()})
        for columns, rows in groups.items():
            conn.execute(_update_resident(columns), rows)

    def touch_identities(self, conn: Connection, identity_ids: list[int], now: datetime) -> None:
        """The time of the last message through these identities (the WhatsApp reply window)."""
        if identity_ids:
            conn.execute(_TOUCH_IDENTITY, [{"iid": i, "now": now} for i in identity_ids])

    def erase(
        self,
        conn: Connection,
        resident_id: int,
        now: datetime,
        *,
        keep_ideas: bool = False,
        inbound_id: int | None = None,
    ) -> list[str]:
        """Erase the resident: nothing that names or reaches them stays in any table — their
        row, channel identities, session, consents and feedback go; their ideas go too, or with
        ``keep_ideas`` stay as anonymous text (no resident, no media); the inbox rows of theirs
        and ``inbound_id`` (the message being processed) and the outbox rows of theirs or to
        their addresses keep no address, text or link to them. Returns the media files to
        unlink once the transaction is committed.

        Replies added later in the same transaction (the goodbye) carry the address until
        they are delivered; having no resident, they are emptied then (see the outbox)."""
        refs = self.contributions.media_refs(conn, resident_id)
        dialogue = self.sessions.dialogue(conn, resident_id)
        refs.extend(_media_refs((dialogue.vars if dialogue else None) or {}))  # taken, not yet stored
        identities = [
            (r.channel, r.address)
            for r in conn.execute(
                select(ChannelIdentity.channel, ChannelIdentity.address).where(
                    ChannelIdentity.resident_id == resident_id
                )
            )
        ]
        self.contributions.erase(conn, resident_id, keep_ideas=keep_ideas)
        ProfileRepository().erase(conn, resident_id)  # who speaks (the foreign key cascades it too)
        self.inbox.forget(conn, resident_id, identities, inbound_id)
        _forget_outbox(conn, resident_id, identities, now)
        conn.execute(delete(Resident).where(Resident.id == resident_id))  # identities, session, consents cascade
        log.info("resident erased on request (ideas %s)", "kept anonymously" if keep_ideas else "deleted")
        return refs

    async def set_reachable(self, channel: str, address: str, reachable: bool, now: datetime) -> None:
        def work(conn: Connection) -> None:
            resident = self.find(conn, channel, address)
            if resident is not None:
                conn.execute(
                    update(Resident).where(Resident.id == resident.id).values(unreachable_at=None if reachable else now)
                )

        await self.db.run(work)

    def mark_undeliverable(
        self,
        conn: Connection,
        resident_id: int,
        now: datetime,
        *,
        unreachable: bool = False,
        opted_out: bool = False,
    ) -> None:
        """A provider said the resident cannot be reached, or has opted out (stopped)."""
        values: dict[str, Any] = {}
        if unreachable:
            values["unreachable_at"] = now
        if opted_out:
            values["stopped_at"] = now
        conn.execute(update(Resident).where(Resident.id == resident_id).values(**values))

    async def last_inbound(self, channel: str, addresses: Iterable[str]) -> dict[str, datetime | None]:
        """When each address last wrote to us on this channel."""
        by_key = {self.keys.index(channel, a): a for a in set(addresses)}
        query = select(ChannelIdentity.address, ChannelIdentity.last_inbound_at).where(
            ChannelIdentity.channel == channel, ChannelIdentity.address.in_(set(by_key))
        )
        rows = await self.db.run(lambda conn: conn.execute(query).all(), write=False)
        return {by_key[r.address]: r.last_inbound_at for r in rows}


def _media_refs(value: Any) -> list[str]:
    """The files named anywhere in a session's answers (any ``{"kind": …, "ref": …}`` at any depth)."""
    if isinstance(value, dict):
        own = [value["ref"]] if value.get("ref") and "kind" in value and isinstance(value["ref"], str) else []
        return own + [ref for v in value.values() for ref in _media_refs(v)]
    if isinstance(value, list):
        return [ref for v in value for ref in _media_refs(v)]
    return []


def _forget_outbox(conn: Connection, resident_id: int, identities: list[tuple[str, str]], now: datetime) -> None:
    """The outbox rows of a resident or to their addresses keep no address, text or resident;
    what was still to be sent is not sent."""
    recipient = or_(
        OutboundMessage.resident_id == resident_id,
        *((OutboundMessage.channel == c) & (OutboundMessage.address == a) for c, a in identities),
    )
    empty: dict[str, Any] = {
        "address": None,
        "address_enc": None,
        "text": "",
        "payload": {},
        "resident_id": None,
        "updated_at": now,
    }
    waiting = OutboundMessage.status.in_(("pending", "sending"))
    conn.execute(
        update(OutboundMessage)
        .where(recipient, waiting)
        .values(empty | {"status": "skipped", "error": "not sent: the resident was erased"})
    )
    conn.execute(update(OutboundMessage).where(recipient, ~waiting).values(empty | {"error": None}))
