"""The conversation service: the one place that wires channels, the engine
and storage together — it orchestrates, the repositories in
:mod:`bot.storage` hold the SQL.

``receive`` stores an inbound message durably (once per provider id);
``process`` runs one engine step for it: read (no write lock) → step (pure)
→ write in a single short transaction — re-check the inbox row, save the
session (optimistic concurrency: a concurrent update makes the whole step run
again on fresh state), apply the effects, put the rendered replies into the
outbox and mark the inbox row done.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.conversation.engine import Engine
from bot.conversation.render import Renderer
from bot.conversation.session import Conversation, Dialogue, Profile
from bot.conversation.step import Context, EraseResident, Message, RecordConsent, StoreFeedback, StoreIdea
from bot.storage.contributions import ContributionRepository
from bot.storage.db import Database
from bot.storage.inbox import InboxRepository
from bot.storage.media import DEFAULT_MAX_BYTES, MediaStore
from bot.storage.outbox import Delivered, OutboxRepository
from bot.storage.residents import ResidentRepository, new_pseudonym
from bot.storage.sessions import Conflict, SessionRepository, StoredSession
from bot.values import Capabilities, Inbound, Media, ReachabilityChange
from channels.registry import Channels, capabilities

__all__ = ["Conflict", "ConversationService", "Delivered", "new_pseudonym", "new_reference", "utcnow"]

log = logging.getLogger(__name__)

REFERENCE_ALPHABET = "ACDEFHJKMNPQRTUVWXY34679"  # no 0/O, 1/I/L, 2/Z, 5/S, 8/B, G/6
MAX_ATTEMPTS = 8
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_reference() -> str:
    pick = lambda: "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(3))  # noqa: E731
    return f"{pick()}-{pick()}"


def _message(payload: dict[str, Any]) -> Message:
    """The engine's view of a stored inbound payload."""
    media = payload.get("media")
    return Message(
        text=payload.get("text"),
        choice=payload.get("choice"),
        media=Media(**{k: v for k, v in media.items() if k != "source"}) if media else None,
        locale_hint=payload.get("locale_hint"),
    )


def _profile(resident: Any) -> Profile:
    return Profile(
        language=resident.language if resident else None,
        consented=bool(resident and resident.consented_at is not None),
        stopped=bool(resident and resident.stopped_at is not None),
        updates=bool(resident and resident.updates_opt_in),
    )


@dataclass
class _Plan:
    row: Any
    resident: Any
    session: StoredSession | None
    outcome: Any
    caps: Capabilities
    now: datetime


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
        zone: Any = UTC,
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
        self.inbox = InboxRepository(db)  # one per service: its group commit is shared
        self.residents = ResidentRepository(db)
        self.sessions = SessionRepository(db)
        self.contributions = ContributionRepository(db)
        self.outbox = OutboxRepository(db)

    # -- inbox -----------------------------------------------------------------

    async def receive(self, inbound: Inbound) -> int | None:
        """Store the message durably; its inbox id, or None if it was seen before."""
        inbox_id = await self.inbox.store(inbound, self.clock())
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
        row = await self.inbox.pending_payload(inbox_id)
        if row is None:
            return
        media = (row.payload or {}).get("media") or {}
        source = media.get("source")
        if not source or media.get("ref"):
            return
        channel = self.channels.push.get(row.channel)
        refused = self.media.refuse(
            media["kind"], media.get("mime") or source.get("mime", ""), media.get("size") or None
        )
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
        payload["media"] = {
            "kind": fetched.kind,
            "ref": fetched.ref,
            "mime": fetched.mime,
            "size": fetched.size,
            "source": None,
        }
        await self.inbox.set_payload(inbox_id, payload)

    async def _plan(self, inbox_id: int) -> _Plan | None:
        """Read what the step needs and run it; nothing is written yet."""
        async with self.db.read() as conn:
            row = await self.inbox.pending(conn, inbox_id)
            if row is None:
                return None
            resident = await self.residents.find(conn, row.channel, row.address)
            session = await self.sessions.load(conn, resident.id) if resident is not None else None
        now = self.clock()
        conv = Conversation(profile=_profile(resident), dialogue=session.dialogue if session else Dialogue())
        caps = capabilities(row.channel)
        ctx = Context(
            now=now,
            new_reference=new_reference(),
            session_timeout=self.session_timeout,
            accepts_media=bool(caps.media),
            zone=self.zone,
        )
        outcome = self.engine.step(conv, _message(row.payload or {}), ctx)
        return _Plan(row=row, resident=resident, session=session, outcome=outcome, caps=caps, now=now)

    async def _write(self, conn: AsyncConnection, plan: _Plan, erased_media: list[str]) -> bool:
        row, outcome, now = plan.row, plan.outcome, plan.now
        if not await self.inbox.lock_pending(conn, row.id):
            return False
        await self.residents.lock(conn, row.channel, row.address)
        resident = plan.resident
        if resident is None:
            resident = await self.residents.create(conn, row.channel, row.address, now)
        erased = any(isinstance(e, EraseResident) for e in outcome.effects)
        if erased:
            erased_media.extend(await self.residents.erase(conn, resident.id))
        else:
            source = ((row.payload or {}).get("extra") or {}).get("source")
            # the session first: a concurrent step makes this fail before anything else is written
            await self.sessions.save(conn, resident.id, plan.session, outcome.conversation.dialogue, now)
            await self._apply(conn, resident, row.channel, outcome.conversation.profile, outcome.effects, now, source)
            await self.residents.touch_identity(conn, resident.identity_id, now)
        resident_id = None if erased else resident.id
        outs = [out for reply in outcome.replies for out in self.renderer.render_parts(reply, plan.caps)]
        await self.outbox.add_replies(
            conn, outs, channel=row.channel, address=row.address, resident_id=resident_id, inbound_id=row.id, now=now
        )
        await self.inbox.mark_done(conn, row.id, now, resident_id)
        return True

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
        """The step's effects, then what changed of the profile."""
        consent_version = None
        for effect in effects:
            if isinstance(effect, RecordConsent):
                consent_version = effect.version
                await self.residents.add_consent(conn, resident.id, effect.version, now)
            elif isinstance(effect, StoreIdea):
                await self.contributions.store_idea(
                    conn,
                    resident_id=resident.id,
                    reference=effect.reference,
                    text=effect.text,
                    topic=effect.topic,
                    district=effect.district,
                    language=effect.language,
                    channel=channel,
                    media=effect.media,
                    now=now,
                )
                log.info("idea %s stored (resident %s)", effect.reference, resident.pseudonym)
            elif isinstance(effect, StoreFeedback):
                await self.contributions.store_feedback(
                    conn,
                    resident_id=resident.id,
                    statement=effect.statement,
                    rating=effect.rating,
                    comment=effect.comment,
                    language=effect.language,
                    channel=channel,
                    media=effect.media,
                    now=now,
                )
        await self.residents.save_profile(conn, resident, profile, now, consent_version=consent_version, source=source)

    def _unlink(self, refs: list[str]) -> None:
        root = self.media_dir.resolve()
        for ref in refs:
            path = (root / ref).resolve()
            if root in path.parents and path.exists():
                path.unlink()

    async def mark_failed(self, inbox_id: int, reason: str) -> None:
        await self.inbox.mark_failed(inbox_id, reason, self.clock())

    async def set_reachable(self, change: ReachabilityChange) -> None:
        """A provider told us whether a resident can be reached (e.g. a blocked bot)."""
        await self.residents.set_reachable(change.channel, change.address, change.reachable, self.clock())

    # -- pull channels (web chat, console) -------------------------------------------

    async def take_pending(self, channel: str, address: str) -> list[Delivered]:
        """Hand over (and mark delivered) the outbox messages for one recipient."""
        return await self.outbox.take_pending(channel, address, self.clock())
