"""Residents and the channel identities they reach us through: lookup and
creation on first contact, profile changes with consent records, reachability,
and erasure (everything personal goes with the resident, by cascade)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.conversation.session import Profile
from bot.storage.contributions import ContributionRepository
from bot.storage.db import Database
from bot.storage.models import ChannelIdentity, Consent, Resident
from bot.storage.sessions import SessionRepository

log = logging.getLogger(__name__)


def new_pseudonym() -> str:
    return "r-" + "".join(secrets.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(12))


def _by_identity(channel: str, address: str) -> Any:
    """The resident's columns and ``identity_id`` for one (channel, address)."""
    return (
        select(Resident.__table__, ChannelIdentity.id.label("identity_id"))
        .join(ChannelIdentity, ChannelIdentity.resident_id == Resident.id)
        .where(ChannelIdentity.channel == channel, ChannelIdentity.address == address)
    )


class ResidentRepository:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.sessions = SessionRepository(db)
        self.contributions = ContributionRepository(db)

    async def find(self, conn: AsyncConnection, channel: str, address: str) -> Any | None:
        """The resident (all columns and ``identity_id``) behind an address, or None."""
        return (await conn.execute(_by_identity(channel, address))).first()

    async def create(self, conn: AsyncConnection, channel: str, address: str, now: datetime) -> Any:
        """First contact: a resident and their channel identity (a race ends in IntegrityError)."""
        resident_id = (
            await conn.execute(
                insert(Resident)
                .values(pseudonym=new_pseudonym(), created_at=now, last_inbound_at=now, updates_opt_in=False)
                .returning(Resident.id)
            )
        ).scalar_one()
        await conn.execute(
            insert(ChannelIdentity).values(resident_id=resident_id, channel=channel, address=address, created_at=now)
        )
        return await self.find(conn, channel, address)

    async def lock(self, conn: AsyncConnection, channel: str, address: str) -> None:
        """One step at a time per resident, across processes (PostgreSQL; SQLite has one writer anyway)."""
        if not self.db.is_sqlite:
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"{channel}:{address}"}
            )

    async def add_consent(self, conn: AsyncConnection, resident_id: int, version: str, now: datetime) -> None:
        await conn.execute(insert(Consent).values(resident_id=resident_id, version=version, given_at=now))

    async def save_profile(
        self,
        conn: AsyncConnection,
        resident: Any,
        profile: Profile,
        now: datetime,
        *,
        consent_version: str | None = None,
        source: str | None = None,
    ) -> None:
        """Store what changed of the profile; they wrote to us, so they are reachable again."""
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
        await conn.execute(update(Resident).where(Resident.id == resident.id).values(**values))

    async def touch_identity(self, conn: AsyncConnection, identity_id: int, now: datetime) -> None:
        """The time of the last message through this identity (the WhatsApp reply window)."""
        await conn.execute(update(ChannelIdentity).where(ChannelIdentity.id == identity_id).values(last_inbound_at=now))

    async def erase(self, conn: AsyncConnection, resident_id: int) -> list[str]:
        """Delete the resident and everything personal (cascades); the media files to unlink."""
        refs = await self.contributions.media_refs(conn, resident_id)
        dialogue = await self.sessions.dialogue(conn, resident_id)
        for key, value in ((dialogue.vars if dialogue else None) or {}).items():
            if key.endswith("__media"):
                refs.extend(m["ref"] for m in value)
        await conn.execute(delete(Resident).where(Resident.id == resident_id))
        log.info("resident erased on request")
        return refs

    async def set_reachable(self, channel: str, address: str, reachable: bool, now: datetime) -> None:
        async with self.db.transaction() as conn:
            resident_id = (
                await conn.execute(
                    select(ChannelIdentity.resident_id).where(
                        ChannelIdentity.channel == channel, ChannelIdentity.address == address
                    )
                )
            ).scalar_one_or_none()
            if resident_id is not None:
                await conn.execute(
                    update(Resident).where(Resident.id == resident_id).values(unreachable_at=None if reachable else now)
                )

    async def mark_undeliverable(
        self,
        conn: AsyncConnection,
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
        await conn.execute(update(Resident).where(Resident.id == resident_id).values(**values))

    async def last_inbound(self, channel: str, addresses: Iterable[str]) -> dict[str, datetime | None]:
        """When each address last wrote to us on this channel."""
        async with self.db.read() as conn:
            found = (
                await conn.execute(
                    select(ChannelIdentity.address, ChannelIdentity.last_inbound_at).where(
                        ChannelIdentity.channel == channel, ChannelIdentity.address.in_(set(addresses))
                    )
                )
            ).all()
        return {r.address: r.last_inbound_at for r in found}
