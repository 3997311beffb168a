"""Abuse limits on the path of a message: flood control and the loop guard.

**Flood control** (:class:`FloodControl`, at processing time — ``ConversationService._process_rows``):
a sender whose message is the (N+1)-th within a minute (``FLOOD_MESSAGES_PER_MINUTE``,
counted from the inbox rows' ``received_at``, so it holds however late the messages are
processed and across processes on PostgreSQL) gets one polite notice in their language
instead of a dialogue step; every further message of theirs received within the
cooling-off (``FLOOD_COOLDOWN_MINUTES``) is acknowledged and marked done without a step
and without a reply — at once, all that wait, so a flood never takes more of the inbox
than one step. Only the flooding sender is held back; everyone else's messages go on in
the same batches. A STOP (in any language) is always heard: it goes through the dialogue.

**Loop guard** (:class:`LoopGuard`, where replies are queued — ``ConversationService._write``):
when a resident would get the same reply more than ``LOOP_GUARD_REPEATS`` times within
five minutes (another bot answering ours), that reply and every reply to them for
``LOOP_GUARD_PAUSE_MINUTES`` are stored as ``skipped`` and not sent; the resident is
flagged in the log by pseudonym and in ``kiezstimme_reply_loops_total``.

Both leave their marks on the rows themselves (:mod:`bot.storage.limits`), nothing in memory.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection

from bot.conversation import texts as M
from bot.conversation.step import Message, Reply
from bot.storage import limits as marks
from channels.registry import capabilities

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.service import ConversationService

log = logging.getLogger(__name__)

FLOOD_WINDOW = timedelta(minutes=1)
LOOP_WINDOW = timedelta(minutes=5)
MAX_SKIPPED_AT_ONCE = 1000  # waiting messages of a flooding sender marked in one transaction


@dataclass(frozen=True)
class _Held:
    row: Any
    resident: Any
    notice: bool  # this message begins the cooling-off (the notice goes out)
    until: datetime  # the end of the cooling-off


class FloodControl:
    """Holds back the messages of a sender beyond ``per_minute`` (see the module)."""

    def __init__(self, service: ConversationService, per_minute: int, cooldown: timedelta, metrics: Any) -> None:
        self.service = service
        self.per_minute = per_minute
        self.cooldown = cooldown
        self.metrics = metrics

    async def hold_back(self, rows: list[Any]) -> tuple[list[Any], dict[int, bool]]:
        """The rows to run through the dialogue, and those handled here (inbox id -> True)."""
        if self.per_minute <= 0 or not rows:
            return rows, {}
        held = await self.service.db.run(lambda conn: self._decide(conn, rows), write=False)
        if not held:
            return rows, {}
        waiting: dict[int, list[int]] = {}
        for h in held:  # the sender's later messages: those within the cooling-off go at once
            ids = await self.service.inbox.pending_ids(h.row.channel, h.row.address, limit=MAX_SKIPPED_AT_ONCE)
            waiting[h.row.id] = [i for i in ids if i != h.row.id]
        now = self.service.clock()
        done = await self.service.db.run(lambda conn: self._write(conn, held, waiting, now))
        notices = [h for h in held if h.notice and h.row.id in done]
        for h in notices:
            log.info(
                "resident %s sends more than %d messages a minute on %s: told once, not answered for %g minutes",
                h.resident.pseudonym,
                self.per_minute,
                h.row.channel,
                self.cooldown.total_seconds() / 60,
            )
        if self.metrics is not None:
            for h in notices:
                self.metrics.flood_notices.labels(h.row.channel).inc()
            for channel, count in done.values():
                if count:
                    self.metrics.flood_skipped.labels(channel).inc(count)
        if notices:
            self.service.on_outbox()
        handled = {h.row.id for h in held}
        return [r for r in rows if r.id not in handled], {i: i in done for i in handled}

    def _decide(self, conn: Connection, rows: list[Any]) -> list[_Held]:
        residents: dict[tuple[str, str], Any] = {}
        for channel in {r.channel for r in rows}:
            found = self.service.residents.find_many(conn, channel, [r.address for r in rows if r.channel == channel])
            residents.update({(channel, address): resident for address, resident in found.items()})
        known = [(r, residents[(r.channel, r.address)]) for r in rows if (r.channel, r.address) in residents]
        if not known:  # a first message: nobody to count yet
            return []
        keys = [(int(resident.id), row.channel) for row, resident in known]
        since = min(row.received_at for row, _ in known) - self.cooldown
        notices = marks.last_flood_notices(conn, keys, since)
        held: list[_Held] = []
        counting = []
        for (row, resident), key in zip(known, keys, strict=True):
            if self._stop(row):  # STOP is always heard
                continue
            told = notices.get(key)
            if told is not None and told <= row.received_at < told + self.cooldown:
                held.append(_Held(row, resident, notice=False, until=told + self.cooldown))
            else:
                counting.append((row, resident, key))
        earlier = marks.earlier_messages(
            conn, [(row.id, key, row.received_at) for row, _, key in counting], FLOOD_WINDOW
        )
        for row, resident, key in counting:
            if earlier.get(key, 0) + 1 > self.per_minute:
                held.append(_Held(row, resident, notice=True, until=row.received_at + self.cooldown))
        return held

    def _stop(self, row: Any) -> bool:
        """The message is a STOP (in any language): it goes through the dialogue, flood or not."""
        text = (row.payload or {}).get("text")
        found = self.service.engine.keyword(Message(text=text)) if isinstance(text, str) and text else None
        return found is not None and found[0] == "stop"

    def _write(
        self, conn: Connection, held: list[_Held], waiting: dict[int, list[int]], now: datetime
    ) -> dict[int, tuple[str, int]]:
        """Mark the held messages (and the sender's later ones within the cooling-off) done,
        queue the notices; inbox id of each held message still waiting -> (channel, messages skipped)."""
        inbox, outbox = self.service.inbox, self.service.outbox
        still = inbox.lock_pending(conn, [h.row.id for h in held] + [i for ids in waiting.values() for i in ids])
        result: dict[int, tuple[str, int]] = {}
        done: list[tuple[int, int | None]] = []
        notes: list[tuple[int, str]] = []
        replies: list[dict[str, Any]] = []
        for h in held:
            if h.row.id not in still:
                continue
            resident_id = int(h.resident.id)
            done.append((h.row.id, resident_id))
            notes.append((h.row.id, marks.FLOOD_NOTICE if h.notice else marks.FLOOD_SKIPPED))
            later = []
            for r in sorted(inbox.pending_rows(conn, [i for i in waiting[h.row.id] if i in still]), key=lambda r: r.id):
                if r.received_at >= h.until or self._stop(r):  # from a STOP on, in order as usual
                    break
                later.append(r)
            done += [(r.id, resident_id) for r in later]
            notes += [(r.id, marks.FLOOD_SKIPPED) for r in later]
            result[h.row.id] = (h.row.channel, len(later) + (0 if h.notice else 1))
            if h.notice and h.resident.stopped_at is None:
                reply = Reply(M.FLOOD_NOTICE, h.resident.language or None)
                outs = self.service.renderer.render_parts(reply, capabilities(h.row.channel))
                replies += outbox.reply_rows(
                    outs,
                    channel=h.row.channel,
                    address=h.row.address,
                    resident_id=resident_id,
                    inbound_id=h.row.id,
                    now=now,
                    sealed=h.row.address_enc,
                )
        outbox.add_replies(conn, replies)
        inbox.mark_done(conn, done, now)
        marks.mark_processed(conn, notes)
        return result


class LoopGuard:
    """Pauses the replies to a resident who gets the same reply again and again (see the module).
    Called in the step's write transaction with the batch's reply rows; returns them, those
    not to be sent marked ``skipped``."""

    def __init__(self, repeats: int, pause: timedelta, metrics: Any) -> None:
        self.repeats = repeats
        self.pause = pause
        self.metrics = metrics

    def __call__(self, conn: Connection, rows: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
        resident_ids = [r["resident_id"] for r in rows if r.get("resident_id") is not None]
        if self.repeats <= 0 or not resident_ids:
            return rows
        paused: set[int] = set()
        sent: Counter[tuple[int, str]] = Counter()
        for r in marks.recent_replies(conn, resident_ids, now - max(LOOP_WINDOW, self.pause)):
            if r.error == marks.LOOP_TRIPPED and r.created_at > now - self.pause:
                paused.add(r.resident_id)
            elif r.status != "skipped" and r.created_at > now - LOOP_WINDOW:
                sent[(r.resident_id, r.text)] += 1
        tripped: list[dict[str, Any]] = []
        skipped = 0
        for row in rows:
            row.setdefault("error", None)  # one executemany: every row names the same columns
            resident_id = row.get("resident_id")
            if resident_id is None:
                continue
            if resident_id in paused:
                row.update(status="skipped", error=marks.LOOP_SKIPPED)
                skipped += 1
                continue
            sent[(resident_id, row["text"])] += 1
            if sent[(resident_id, row["text"])] > self.repeats:
                row.update(status="skipped", error=marks.LOOP_TRIPPED)
                paused.add(resident_id)
                tripped.append(row)
        for row in tripped:
            # a batch that meets a concurrent change is written again: then it is flagged twice
            log.warning(
                "reply loop with resident %s on %s: the same reply more than %d times within %d minutes;"
                " no replies to them for %g minutes",
                marks.pseudonym(conn, row["resident_id"]),
                row["channel"],
                self.repeats,
                LOOP_WINDOW.total_seconds() // 60,
                self.pause.total_seconds() / 60,
            )
            if self.metrics is not None:
                self.metrics.reply_loops.labels(row["channel"]).inc()
        if self.metrics is not None and skipped + len(tripped):
            for row in rows:
                if row.get("status") == "skipped" and str(row.get("error", "")).startswith("loop guard"):
                    self.metrics.loop_suppressed.labels(row["channel"]).inc()
        return rows


def install(service: ConversationService, settings: Settings) -> None:
    """Switch the limits on for a service, as configured."""
    metrics = service.metrics
    if settings.flood_messages_per_minute > 0:
        cooldown = timedelta(minutes=settings.flood_cooldown_minutes)
        service.flood = FloodControl(service, settings.flood_messages_per_minute, cooldown, metrics)
    if settings.loop_guard_repeats > 0:
        pause = timedelta(minutes=settings.loop_guard_pause_minutes)
        service.loop_guard = LoopGuard(settings.loop_guard_repeats, pause, metrics)
