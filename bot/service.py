"""The conversation service: the one place that wires channels, the engine
and storage together — it orchestrates, the repositories in
:mod:`bot.storage` hold the SQL.

``receive`` stores an inbound message durably (once per provider id);
``process_batch`` runs the engine steps for several stored messages: one read
(no write lock) → the pure steps → one short write transaction — re-check the
inbox rows, save the sessions (optimistic concurrency: a concurrent update
makes the steps run again on fresh state), apply the effects, put the
rendered replies into the outbox and mark the inbox rows done.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.conversation.engine import Engine
from bot.conversation.personal_data import lines as data_lines
from bot.conversation.render import Renderer
from bot.conversation.session import Conversation, Dialogue, Profile
from bot.conversation.step import (
    Context,
    EraseResident,
    Message,
    RecordConsent,
    SendData,
    StoreFeedback,
    StoreIdea,
    StoreProfile,
)
from bot.storage.contributions import ContributionRepository
from bot.storage.db import Database
from bot.storage.inbox import InboxRepository
from bot.storage.media import DEFAULT_MAX_BYTES, MediaStore
from bot.storage.outbox import Delivered, OutboxRepository
from bot.storage.partners import attribution as partner_attribution
from bot.storage.personal_data import personal_data
from bot.storage.profiles import ProfileRepository
from bot.storage.residents import ResidentRepository, new_pseudonym
from bot.storage.sessions import Conflict, SessionRepository, StoredSession
from bot.values import Inbound, Media, Outgoing, ReachabilityChange
from channels.registry import Channels, capabilities

__all__ = ["Conflict", "ConversationService", "Delivered", "new_pseudonym", "new_references", "utcnow"]

log = logging.getLogger(__name__)

REFERENCE_ALPHABET = "ACDEFHJKMNPQRTUVWXY34679"  # no 0/O, 1/I/L, 2/Z, 5/S, 8/B, G/6
MAX_ATTEMPTS = 8
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_references(count: int) -> list[str]:
    """``count`` codes from one draw of the system's randomness (one call for a whole batch of steps)."""
    size = len(REFERENCE_ALPHABET)
    n = secrets.randbits(40 * count)  # 6 letters of 24 need log2(24**6) = 27.5 bits; 40 leave no bias to speak of
    codes = []
    for _ in range(count):
        n, value = divmod(n, 1 << 40)
        value %= size**6
        chars = []
        for _ in range(6):
            value, digit = divmod(value, size)
            chars.append(REFERENCE_ALPHABET[digit])
        codes.append("".join(chars[:3]) + "-" + "".join(chars[3:]))
    return codes


def _message(payload: dict[str, Any]) -> Message:
    """The engine's view of a stored inbound payload."""
    media = payload.get("media")
    extra = payload.get("extra") or {}
    return Message(
        text=payload.get("text"),
        choice=payload.get("choice"),
        media=Media(**{k: v for k, v in media.items() if k != "source"}) if media else None,
        locale_hint=payload.get("locale_hint"),
        unsupported=extra.get("unsupported"),
        album=extra.get("album"),
        more_media=tuple(
            Media(**{k: v for k, v in m.items() if k != "source"})
            for m in extra.get("more_media") or ()
            if isinstance(m, dict) and m.get("ref")
        ),
    )


def _profile(resident: Any, consent_version: str) -> Profile:
    """The engine's view of a resident; consent counts only for the privacy notice's current version."""
    agreed = bool(resident and resident.consented_at is not None)
    current = agreed and resident.consent_version == consent_version
    return Profile(
        language=resident.language if resident else None,
        consented=current,
        stopped=bool(resident and resident.stopped_at is not None),
        updates=bool(resident and resident.updates_opt_in),
        consent_outdated=agreed and not current,
        described=bool(resident and resident.described),
    )


@dataclass
class _Plan:
    row: Any
    resident: Any
    session: StoredSession | None
    outcome: Any
    outs: list[Outgoing]
    now: datetime


@dataclass
class _Writes:
    """What the steps of a batch write alike, collected for one executemany each."""

    sessions: list[tuple[int, StoredSession | None, Dialogue]] = field(default_factory=list)
    profiles: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    identities: list[int] = field(default_factory=list)
    replies: list[dict[str, Any]] = field(default_factory=list)
    done: list[tuple[int, int | None]] = field(default_factory=list)


def _unused_media(plan: _Plan) -> list[str]:
    """The file of the step's message if the step kept no reference to it (a photo sent where
    none was asked for, or by someone who stopped or was just erased): unlinked after the commit,
    so no file outlives what refers to it."""
    payload = plan.row.payload or {}
    refs = [((payload.get("media") or {}).get("ref"))]
    refs += [m.get("ref") for m in (payload.get("extra") or {}).get("more_media") or () if isinstance(m, dict)]
    outcome = plan.outcome
    kept = repr(outcome.conversation.dialogue) + repr(outcome.effects)
    return [ref for ref in refs if ref and ref not in kept]


def _needs_media(row: Any) -> bool:
    """The message has a file that is still on the provider's side."""
    media = (row.payload or {}).get("media") or {}
    return bool(media.get("source")) and not media.get("ref")


def _stored(media: Media) -> dict[str, Any]:
    return {"kind": media.kind, "ref": media.ref, "mime": media.mime, "size": media.size, "source": None}


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
        self.flood: Any = None  # abuse limits, set by bot.app (bot/delivery/limits.py)
        self.loop_guard: Any = None
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
        """Run the engine for one stored message. True if it was processed now."""
        return (await self.process_batch([inbox_id])).get(inbox_id, False)

    async def process_senders(self, senders: list[tuple[str, str]]) -> dict[tuple[str, str], bool]:
        """Run the engine for the oldest waiting message of each sender, all in one
        batch (see :meth:`process_batch`). sender -> False if nothing of theirs waits."""
        rows = await self.db.run(lambda conn: self.inbox.oldest_pending(conn, senders), write=False)
        found = {(r.channel, r.address) for r in rows}
        if rows:
            await self._process_rows(rows)
        return {sender: sender in found for sender in senders}

    async def process_batch(self, inbox_ids: list[int]) -> dict[int, bool]:
        """Run the engine for several stored messages — at most one per sender —
        sharing one read and one write transaction. inbox id -> True if it was
        processed now (False: already done, or gone).

        Read (no write lock) → steps (pure, CPU, in a thread so webhooks keep
        being acknowledged) → write (one short transaction that re-checks the
        inbox rows and the session versions). A concurrent change anywhere
        makes the batch fall back to one message at a time, each run again on
        fresh state."""
        rows = await self.db.run(lambda conn: self.inbox.pending_rows(conn, inbox_ids), write=False)
        return {i: False for i in inbox_ids} | await self._process_rows(rows)

    async def _process_rows(self, rows: list[Any]) -> dict[int, bool]:
        held: dict[int, bool] = {}
        if self.flood is not None:  # beyond a sender's flood limit: no step, no reply (bot/delivery/limits.py)
            rows, held = await self.flood.hold_back(rows)
        for row in rows:
            if _needs_media(row):
                await self._fetch_media(row)
        results: dict[int, bool] = held
        if not rows:
            return results
        try:
            results.update(await self._attempt([r.id for r in rows]))
        except (Conflict, IntegrityError) as exc:
            if len(rows) == 1:
                return results | await self._retry(rows[0].id, exc)
            log.info("a batch of %d steps met a concurrent change (%s); one at a time", len(rows), type(exc).__name__)
            for row in rows:
                results.update(await self._single(row.id))
        return results

    async def _single(self, inbox_id: int) -> dict[int, bool]:
        try:
            return await self._attempt([inbox_id])
        except (Conflict, IntegrityError) as exc:
            return await self._retry(inbox_id, exc)

    async def _retry(self, inbox_id: int, exc: Exception) -> dict[int, bool]:
        for attempt in range(1, MAX_ATTEMPTS):
            log.info("inbox %s: retrying after %s (attempt %d)", inbox_id, type(exc).__name__, attempt + 1)
            try:
                return await self._attempt([inbox_id])
            except (Conflict, IntegrityError) as again:
                exc = again
        raise RuntimeError(f"inbox message {inbox_id} could not be processed")

    async def _attempt(self, inbox_ids: list[int]) -> dict[int, bool]:
        read = await self.db.run(lambda conn: self._read(conn, inbox_ids), write=False)
        plans = await asyncio.to_thread(self._step_all, *read)
        erased_media: list[str] = []
        done = await self.db.run(lambda conn: self._write(conn, plans, erased_media))
        self._unlink(erased_media)
        if any(done.values()):
            self.on_outbox()
            if self.metrics is not None:
                self.metrics.processed.labels("done").inc(sum(done.values()))
        return done

    async def _fetch_media(self, row: Any) -> None:
        """Download a resident's voice note or photo before the step (outside any transaction),
        and the further photos of a message that carried several (an MMS)."""
        media = row.payload["media"]
        payload = dict(row.payload)
        payload["media"] = _stored(await self._download(row.channel, media["kind"], media, media["source"]))
        extra = dict(payload.get("extra") or {})
        more = []
        for source in extra.get("more_media") or ():
            if isinstance(source, dict) and source.get("url"):
                fetched = await self._download(row.channel, "photo", {"mime": source.get("mime", "")}, source)
                if fetched.ref:
                    more.append(_stored(fetched))
        if "more_media" in extra:
            extra["more_media"] = more  # stored files only: the provider's addresses are not kept
            payload["extra"] = extra
        await self.inbox.set_payload(row.id, payload)

    async def _download(self, channel_name: str, kind: str, media: dict[str, Any], source: dict[str, Any]) -> Media:
        channel = self.channels.push.get(channel_name)
        refused = self.media.refuse(kind, media.get("mime") or source.get("mime", ""), media.get("size") or None)
        if refused is not None:
            return refused
        if channel is None:
            return Media(kind="unsupported", ref="")
        got = await channel.fetch_media(dict(source))
        if got is None:
            return Media(kind="unsupported", ref="")
        mime, data = got
        return self.media.save(kind, mime or media.get("mime", ""), data)

    def _read(
        self, conn: Connection, inbox_ids: list[int]
    ) -> tuple[list[Any], dict[Any, Any], dict[int, StoredSession]]:
        """What the steps need: the inbox rows, their residents and sessions (three queries for the batch)."""
        rows = self.inbox.pending_rows(conn, inbox_ids)
        residents: dict[Any, Any] = {}
        for channel in {r.channel for r in rows}:
            found = self.residents.find_many(conn, channel, [r.address for r in rows if r.channel == channel])
            residents.update({(channel, address): resident for address, resident in found.items()})
        sessions = self.sessions.load_many(conn, [r.id for r in residents.values()])
        return rows, residents, sessions

    def _step_all(self, rows: list[Any], residents: dict[Any, Any], sessions: dict[int, StoredSession]) -> list[_Plan]:
        """The pure steps, one per message (no database here)."""
        now = self.clock()
        plans = []
        references = iter(new_references(len(rows)))
        for row in rows:
            resident = residents.get((row.channel, row.address))
            session = sessions.get(resident.id) if resident is not None else None
            profile = _profile(resident, self.engine.flows.consent_version)
            conv = Conversation(profile=profile, dialogue=session.dialogue if session else Dialogue())
            caps = capabilities(row.channel)
            ctx = Context(
                now=now,
                new_reference=next(references),
                session_timeout=self.session_timeout,
                accepts_media=bool(caps.media),
                buttons=caps.buttons,
                zone=self.zone,
            )
            outcome = self.engine.step(conv, _message(row.payload or {}), ctx)
            outs = [out for reply in outcome.replies for out in self.renderer.render_parts(reply, caps)]
            plans.append(_Plan(row=row, resident=resident, session=session, outcome=outcome, outs=outs, now=now))
        return plans

    def _write(self, conn: Connection, plans: list[_Plan], erased_media: list[str]) -> dict[int, bool]:
        """All steps of the batch in one transaction, what repeats per step in one executemany
        each; residents locked in one order (no deadlock)."""
        still = self.inbox.lock_pending(conn, [p.row.id for p in plans])
        self.residents.lock_many(conn, [(p.row.channel, p.row.address) for p in plans if p.row.id in still])
        results: dict[int, bool] = {}
        batch = _Writes()
        for plan in sorted(plans, key=lambda p: (p.row.channel, p.row.address)):
            row = plan.row
            results[row.id] = row.id in still
            if row.id not in still:
                continue
            resident_id = self._write_one(conn, plan, erased_media, batch)
            batch.replies += self.outbox.reply_rows(
                self._with_data(conn, plan, resident_id),
                channel=row.channel,
                address=row.address,
                sealed=row.address_enc,
                resident_id=resident_id,
                inbound_id=row.id,
                now=plan.now,
            )
            batch.done.append((row.id, resident_id))
            erased_media.extend(_unused_media(plan))
        now = plans[0].now if plans else self.clock()
        self.sessions.save_many(conn, batch.sessions, now)  # a concurrent change fails the batch here
        self.residents.save_profiles(conn, batch.profiles)
        self.residents.touch_identities(conn, batch.identities, now)
        if self.loop_guard is not None:  # the same reply again and again: replies pause (bot/delivery/limits.py)
            batch.replies = self.loop_guard(conn, batch.replies, now)
        self.outbox.add_replies(conn, batch.replies)
        self.inbox.mark_done(conn, batch.done, now)
        return results

    def _with_data(self, conn: Connection, plan: _Plan, resident_id: int | None) -> list[Outgoing]:
        """The step's replies; after DATA first what is stored about the resident, in their
        language, split the channel's way (several SMS where one is not enough)."""
        if resident_id is None or not any(isinstance(e, SendData) for e in plan.outcome.effects):
            return plan.outs
        data = personal_data(conn, resident_id)
        if data is None:
            return plan.outs
        profile = plan.outcome.conversation.profile
        language = profile.language or self.engine.flows.default_language.code
        tr = self.renderer.catalogs.get(language)
        body = "\n".join(
            self.renderer.text(tr, line) for line in data_lines(self.engine.flows, data, language, self.zone)
        )
        caps = capabilities(plan.row.channel)
        parts = [
            Outgoing(text=text, language=language, direction=tr.language.direction, segments=units)
            for text, units in caps.fit(body)
        ]
        return parts + plan.outs

    def _write_one(self, conn: Connection, plan: _Plan, erased_media: list[str], batch: _Writes) -> int | None:
        """One step's own writes (what repeats goes into ``batch``); the resident's id, or None once erased."""
        row, outcome, now = plan.row, plan.outcome, plan.now
        resident = plan.resident
        if resident is None:  # the inbox row's address as stored: its key and the sealed address
            resident = self.residents.create_stored(conn, row.channel, row.address, row.address_enc, now)
        erase = next((e for e in outcome.effects if isinstance(e, EraseResident)), None)
        if erase is not None:
            # the replies of this step (the goodbye) go out without a resident and are emptied once delivered
            erased_media.extend(
                self.residents.erase(conn, resident.id, now, keep_ideas=erase.keep_ideas, inbound_id=row.id)
            )
            return None
        # where they came from: an outreach partner's code (bot/storage/partners.py), else a deep link's payload
        payload = row.payload or {}
        extra = payload.get("extra") or {}
        source = partner_attribution(conn, payload, first=plan.resident is None) or extra.get("source")
        batch.sessions.append((resident.id, plan.session, outcome.conversation.dialogue))
        consent_version = self._apply(conn, resident, row.channel, outcome.effects, now, erased_media)
        changes = self.residents.profile_changes(
            resident, outcome.conversation.profile, now, consent_version=consent_version, source=source
        )
        batch.profiles.append((resident.id, changes))
        batch.identities.append(resident.identity_id)
        return int(resident.id)

    def _apply(
        self, conn: Connection, resident: Any, channel: str, effects: list[Any], now: datetime, unlink: list[str]
    ) -> str | None:
        """The step's effects; the consent version if consent was given. Files no longer
        referenced (a re-rated statement's earlier voice comment) are added to ``unlink``."""
        consent_version = None
        for effect in effects:
            if isinstance(effect, RecordConsent):
                consent_version = effect.version
                self.residents.add_consent(conn, resident.id, effect.version, now)
            elif isinstance(effect, StoreIdea):
                self.contributions.store_idea(
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
            elif isinstance(effect, StoreProfile):  # apart from the idea: keyed by the resident only
                ProfileRepository().save(conn, resident.id, effect.actor_group, effect.age_band, now)
            elif isinstance(effect, StoreFeedback):
                unlink += self.contributions.store_feedback(
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
        return consent_version

    def _unlink(self, refs: list[str]) -> None:
        root = self.media_dir.resolve()
        for ref in refs:
            if not ref:
                continue
            path = (root / ref).resolve()
            if root in path.parents and path.exists():
                path.unlink()

    async def mark_failed(self, inbox_id: int, reason: str) -> None:
        """Set a message aside that can never be processed (dead letter, with the reason),
        counted as ``kiezstimme_inbound_processed_total{result="failed"}``."""
        await self.inbox.mark_failed(inbox_id, reason, self.clock())
        if self.metrics is not None:
            self.metrics.processed.labels("failed").inc()

    async def set_reachable(self, change: ReachabilityChange) -> None:
        """A provider told us whether a resident can be reached (e.g. a blocked bot)."""
        await self.residents.set_reachable(change.channel, change.address, change.reachable, self.clock())

    # -- pull channels (web chat, console) -------------------------------------------

    async def take_pending(self, channel: str, address: str) -> list[Delivered]:
        """Hand over (and mark delivered) the outbox messages for one recipient."""
        return await self.outbox.take_pending(channel, address, self.clock())
