"""The conversation service: the one place that wires channels, the engine
and storage together.

``receive`` stores an inbound message durably (once per provider id);
``process`` runs one engine step for it in a single transaction — load the
session, step, apply the effects, save the session (optimistic concurrency:
a concurrent update makes the whole step run again on fresh state), put the
rendered replies into the outbox and mark the inbox row done.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.conversation.engine import Engine
from bot.conversation.session import Conversation, Dialogue, Profile
from bot.conversation.step import Context, EraseResident, Message, RecordConsent, StoreFeedback, StoreIdea
from bot.values import Media
from bot.delivery.media import DEFAULT_MAX_BYTES, MediaStore
from bot.conversation.render import Renderer
from bot.storage.db import Database
from bot.storage.models import (
    ChannelIdentity,
    Consent,
    Feedback,
    Idea,
    InboundMessage,
    OutboundMessage,
    Resident,
    Session,
)
from bot.values import Capabilities, Inbound, ReachabilityChange
from channels.registry import Channels, capabilities

log = logging.getLogger(__name__)

REFERENCE_ALPHABET = "ACDEFHJKMNPQRTUVWXY34679"  # no 0/O, 1/I/L, 2/Z, 5/S, 8/B, G/6
MAX_ATTEMPTS = 8
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_reference() -> str:
    pick = lambda: "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(3))  # noqa: E731
    return f"{pick()}-{pick()}"


def new_pseudonym() -> str:
    return "r-" + "".join(secrets.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(12))


def _media_json(media: Media) -> dict[str, Any]:
    return {"kind": media.kind, "ref": media.ref, "mime": media.mime, "size": media.size}


@dataclass
class _Plan:
    row: Any
    resident: Any
    session: Any
    outcome: Any
    caps: Capabilities
    now: datetime


class Conflict(Exception):
    """The session changed under us; the step is run again."""


@dataclass(frozen=True)
class Delivered:
    """An outbox message handed to a pull channel (web chat, console)."""

    id: int
    text: str
    language: str | None
    direction: str
    choices: list[dict[str, str]]


class ConversationService:
    def __init__(
        self,
        db: Database,
        engine: Engine,
        renderer: Renderer,
        *,
        session_timeout: timedelta = timedelta(hours=24),
        media_dir: Path = Path("data/media"),
        media_max_bytes: int = DEFAULT_MAX_BYTES,
        channels: Channels | None = None,
        clock: Clock = utcnow,
        zone: Any = timezone.utc,
    ) -> None:
        self.zone = zone
        self.db = db
        self.engine = engine
        self.renderer = renderer
        self.session_timeout = session_timeout
        self.media_dir = Path(media_dir)
        self.media = MediaStore(self.media_dir, media_max_bytes)
        self.channels = channels or Channels()
        self.clock = clock
        self.on_outbox: Callable[[], None] = lambda: None  # the sender's wake-up call
        self.metrics: Any = None
        self._writer: Any = None

    # -- inbox -----------------------------------------------------------------

    async def receive(self, inbound: Inbound) -> int | None:
        """Store the message durably; its inbox id, or None if it was seen before."""
        from bot.delivery.inbox import InboxWriter

        if self._writer is None:
            self._writer = InboxWriter(self.db)
        inbox_id = await self._writer.store(
            {
                "channel": inbound.channel,
                "provider_id": inbound.provider_id,
                "address": inbound.address,
                "payload": inbound.payload(),
                "status": "pending",
                "received_at": self.clock(),
            }
        )
        if self.metrics is not None:
            (self.metrics.inbound if inbox_id is not None else self.metrics.duplicates).labels(inbound.channel).inc()
        return inbox_id

    async def handle(self, inbound: Inbound) -> int | None:
        """Receive and process at once; None for a redelivered message."""
        inbox_id = await self.receive(inbound)
        if inbox_id is not None:
            await self.process(inbox_id)
        return inbox_id

    async def process(self, inbox_id: int) -> bool:
        """Run the engine for one stored message. True if it was processed now.

        Read (no write lock) → step (pure, CPU) → write (a short transaction
        that re-checks the inbox row and the session version; a concurrent
        change makes the whole thing run again on fresh state)."""
        await self._fetch_media(inbox_id)
        for attempt in range(MAX_ATTEMPTS):
            try:
                erased_media: list[str] = []
                plan = await self._plan(inbox_id)
                if plan is None:
                    return False
                async with self.db.transaction() as conn:
                    done = await self._write(conn, plan, erased_media)
                self._unlink(erased_media)
                if done:
                    self.on_outbox()
                    if self.metrics is not None:
                        self.metrics.processed.labels("done").inc()
                return done
            except (Conflict, IntegrityError) as exc:
                log.info("inbox %s: retrying after %s (attempt %d)", inbox_id, type(exc).__name__, attempt + 1)
        raise RuntimeError(f"inbox message {inbox_id} could not be processed")

    async def _fetch_media(self, inbox_id: int) -> None:
        """Download a resident's voice note or photo before the step (outside any transaction)."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(InboundMessage.channel, InboundMessage.payload).where(
                        InboundMessage.id == inbox_id, InboundMessage.status == "pending"
                    )
                )
            ).first()
        media = ((row.payload or {}).get("media") or {}) if row else {}
        source = media.get("source")
        if not source or media.get("ref"):
            return
        channel = self.channels.push.get(row.channel)
        refused = self.media.refuse(media["kind"], media.get("mime") or source.get("mime", ""), media.get("size") or None)
        if refused is not None:
            fetched = refused
        elif channel is None:
            fetched = Media(kind="unsupported", ref="")
        else:
            got = await channel.fetch_media(dict(source))
            if got is None:
                fetched = Media(kind="unsupported", ref="")
            else:
                mime, data = got
                fetched = self.media.save(media["kind"], mime or media.get("mime", ""), data)
        payload = dict(row.payload)
        payload["media"] = {"kind": fetched.kind, "ref": fetched.ref, "mime": fetched.mime, "size": fetched.size, "source": None}
        async with self.db.transaction() as conn:
            await conn.execute(
                update(InboundMessage)
                .where(InboundMessage.id == inbox_id, InboundMessage.status == "pending")
                .values(payload=payload)
            )

    async def _plan(self, inbox_id: int) -> "_Plan | None":
        """Read what the step needs and run it; nothing is written yet."""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(InboundMessage).where(InboundMessage.id == inbox_id, InboundMessage.status == "pending")
                )
            ).first()
            if row is None:
                return None
            resident = (
                await conn.execute(
                    select(Resident.__table__, ChannelIdentity.id.label("identity_id"))
                    .join(ChannelIdentity, ChannelIdentity.resident_id == Resident.id)
                    .where(ChannelIdentity.channel == row.channel, ChannelIdentity.address == row.address)
                )
            ).first()
            session = None
            if resident is not None:
                session = (
                    await conn.execute(
                        select(Session.state, Session.version).where(Session.resident_id == resident.id)
                    )
                ).first()
        now = self.clock()
        payload = row.payload or {}
        conv = Conversation(
            profile=Profile(
                language=resident.language if resident else None,
                consented=bool(resident and resident.consented_at is not None),
                stopped=bool(resident and resident.stopped_at is not None),
                updates=bool(resident and resident.updates_opt_in),
            ),
            dialogue=Dialogue.from_json(session.state if session else None),
        )
        media = payload.get("media")
        message = Message(
            text=payload.get("text"),
            choice=payload.get("choice"),
            media=Media(**{k: v for k, v in media.items() if k != "source"}) if media else None,
            locale_hint=payload.get("locale_hint"),
        )
        caps = capabilities(row.channel)
        ctx = Context(
            now=now,
            new_reference=new_reference(),
            session_timeout=self.session_timeout,
            accepts_media=bool(caps.media),
            zone=self.zone,
        )
        outcome = self.engine.step(conv, message, ctx)
        return _Plan(row=row, resident=resident, session=session, outcome=outcome, caps=caps, now=now)

    async def _write(self, conn: AsyncConnection, plan: "_Plan", erased_media: list[str]) -> bool:
        row, outcome, now = plan.row, plan.outcome, plan.now
        still = (
            await conn.execute(
                select(InboundMessage.id)
                .where(InboundMessage.id == row.id, InboundMessage.status == "pending")
                .with_for_update()  # PostgreSQL: a second processor waits, then sees "done"
            )
        ).first()
        if still is None:
            return False
        if not self.db.is_sqlite:  # one step at a time per resident, across processes
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                {"key": f"{row.channel}:{row.address}"},
            )
        resident = plan.resident
        if resident is None:
            resident = await self._create_resident(conn, row.channel, row.address, now)
        payload = row.payload or {}
        erased = any(isinstance(e, EraseResident) for e in outcome.effects)
        if erased:
            erased_media.extend(await self._erase(conn, resident.id))
        else:
            source = (payload.get("extra") or {}).get("source")
            # the session first: a concurrent step makes this fail before anything else is written
            await self._save_session(conn, resident.id, plan.session, outcome.conversation.dialogue, now)
            await self._apply(conn, resident, row.channel, outcome.conversation.profile, outcome.effects, now, source)
            await conn.execute(
                update(ChannelIdentity).where(ChannelIdentity.id == resident.identity_id).values(last_inbound_at=now)
            )
        if outcome.replies:
            await conn.execute(
                insert(OutboundMessage),
                [
                    part
                    for reply in outcome.replies
                    for part in self._outbox_rows(reply, row, None if erased else resident.id, plan.caps, now)
                ],
            )
        await conn.execute(
            update(InboundMessage)
            .where(InboundMessage.id == row.id)
            .values(status="done", processed_at=now, payload=None, address=None, resident_id=None if erased else resident.id)
        )
        return True

    def _outbox_rows(self, reply: Any, inbox: Any, resident_id: int | None, caps: Capabilities, now: datetime) -> list[dict[str, Any]]:
        """One reply as outbox rows: rendered for the channel; SMS kept in GSM-7
        where possible, split at sentence boundaries and its segments counted."""
        return [
            {
                "resident_id": resident_id,
                "channel": inbox.channel,
                "address": inbox.address,
                "language": out.language,
                "text": out.text,
                "payload": {
                    "direction": out.direction,
                    "choices": [{"value": c.value, "label": c.label} for c in out.choices],
                },
                "priority": 0,
                "status": "pending",
                "attempts": 0,
                "segments": out.segments,
                "inbound_id": inbox.id,
                "created_at": now,
            }
            for out in self.renderer.render_parts(reply, caps)
        ]

    async def _create_resident(self, conn: AsyncConnection, channel: str, address: str, now: datetime) -> Any:
        """First contact: a resident and their channel identity (a race ends in IntegrityError → retry)."""
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
        return (
            await conn.execute(
                select(Resident.__table__, ChannelIdentity.id.label("identity_id"))
                .join(ChannelIdentity, ChannelIdentity.resident_id == Resident.id)
                .where(ChannelIdentity.channel == channel, ChannelIdentity.address == address)
            )
        ).first()

    async def _apply(
        self,
        conn: AsyncConnection,
        resident: Any,
        channel: str,
        profile: Profile,
        effects: list[Any],
        now: datetime,
        source: str | None = None,
    ) -> None:
        values: dict[str, Any] = {"last_inbound_at": now}
        if source and not resident.source:
            values["source"] = source[:64]  # where they came from, e.g. a poster's deep link
        if resident.unreachable_at is not None:
            values["unreachable_at"] = None  # they wrote to us, so they can be reached
        if profile.language != resident.language:
            values["language"] = profile.language
        if profile.stopped != (resident.stopped_at is not None):
            values["stopped_at"] = now if profile.stopped else None
        if profile.updates != resident.updates_opt_in:
            values["updates_opt_in"] = profile.updates
        for effect in effects:
            if isinstance(effect, RecordConsent):
                values["consented_at"] = now
                values["consent_version"] = effect.version
                await conn.execute(
                    insert(Consent).values(resident_id=resident.id, version=effect.version, given_at=now)
                )
            elif isinstance(effect, StoreIdea):
                await conn.execute(
                    insert(Idea).values(
                        reference=effect.reference,
                        resident_id=resident.id,
                        text=effect.text,
                        topic=effect.topic,
                        district=effect.district,
                        language=effect.language,
                        channel=channel,
                        media=[_media_json(m) for m in effect.media],
                        status="new",
                        created_at=now,
                    )
                )
                log.info("idea %s stored (resident %s)", effect.reference, resident.pseudonym)
            elif isinstance(effect, StoreFeedback):
                await conn.execute(
                    insert(Feedback).values(
                        resident_id=resident.id,
                        statement=effect.statement,
                        rating=effect.rating,
                        comment=effect.comment,
                        media=[_media_json(m) for m in effect.media],
                        language=effect.language,
                        channel=channel,
                        created_at=now,
                    )
                )
        if values:
            await conn.execute(update(Resident).where(Resident.id == resident.id).values(**values))

    async def _save_session(self, conn: AsyncConnection, resident_id: int, session: Any, dialogue: Dialogue, now: datetime) -> None:
        if session is None:
            await conn.execute(
                insert(Session).values(resident_id=resident_id, state=dialogue.to_json(), version=1, updated_at=now)
            )
            return
        result = await conn.execute(
            update(Session)
            .where(Session.resident_id == resident_id, Session.version == session.version)
            .values(state=dialogue.to_json(), version=session.version + 1, updated_at=now)
        )
        if result.rowcount != 1:
            raise Conflict()

    async def _erase(self, conn: AsyncConnection, resident_id: int) -> list[str]:
        """Delete the resident and everything personal (cascades); return media to unlink."""
        ideas = (await conn.execute(select(Idea.media).where(Idea.resident_id == resident_id))).scalars().all()
        ideas += (await conn.execute(select(Feedback.media).where(Feedback.resident_id == resident_id))).scalars().all()
        session = (await conn.execute(select(Session.state).where(Session.resident_id == resident_id))).scalar_one_or_none()
        refs = [m["ref"] for media in ideas for m in (media or [])]
        for key, value in ((session or {}).get("vars") or {}).items():
            if key.endswith("__media"):
                refs.extend(m["ref"] for m in value)
        await conn.execute(delete(Resident).where(Resident.id == resident_id))
        log.info("resident erased on request")
        return refs

    def _unlink(self, refs: list[str]) -> None:
        root = self.media_dir.resolve()
        for ref in refs:
            path = (root / ref).resolve()
            if root in path.parents and path.exists():
                path.unlink()

    async def mark_failed(self, inbox_id: int, reason: str) -> None:
        async with self.db.transaction() as conn:
            await conn.execute(
                update(InboundMessage)
                .where(InboundMessage.id == inbox_id, InboundMessage.status == "pending")
                .values(status="failed", error=reason[:200], processed_at=self.clock(), payload=None, address=None)
            )

    async def set_reachable(self, change: ReachabilityChange) -> None:
        """A provider told us whether a resident can be reached (e.g. a blocked bot)."""
        async with self.db.transaction() as conn:
            resident_id = (
                await conn.execute(
                    select(ChannelIdentity.resident_id).where(
                        ChannelIdentity.channel == change.channel, ChannelIdentity.address == change.address
                    )
                )
            ).scalar_one_or_none()
            if resident_id is not None:
                await conn.execute(
                    update(Resident)
                    .where(Resident.id == resident_id)
                    .values(unreachable_at=None if change.reachable else self.clock())
                )

    # -- pull channels (web chat, console) -------------------------------------------

    async def take_pending(self, channel: str, address: str) -> list[Delivered]:
        """Hand over (and mark delivered) the outbox messages for one recipient."""
        async with self.db.transaction() as conn:
            rows = (
                await conn.execute(
                    update(OutboundMessage)
                    .where(
                        OutboundMessage.channel == channel,
                        OutboundMessage.address == address,
                        OutboundMessage.status == "pending",
                    )
                    .values(status="delivered", sent_at=self.clock(), updated_at=self.clock(), attempts=1)
                    .returning(
                        OutboundMessage.id,
                        OutboundMessage.text,
                        OutboundMessage.language,
                        OutboundMessage.payload,
                    )
                )
            ).all()
        rows = sorted(rows, key=lambda r: r.id)
        return [
            Delivered(
                id=r.id,
                text=r.text,
                language=r.language,
                direction=(r.payload or {}).get("direction", "ltr"),
                choices=list((r.payload or {}).get("choices", [])),
            )
            for r in rows
        ]
