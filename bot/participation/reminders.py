"""Deadline reminders, phase announcements and idea status notices — all
through the outbox's bulk API, each in the resident's language.

- exactly one reminder per resident per offset (the idempotency key is the
  reminder's id), never after the deadline (``expires_at``);
- a resident who started but did not finish gets a personal reminder (reply
  to continue); one who already took part in this phase gets none;
- a resident in the middle of a dialogue is not interrupted: they are
  skipped now and picked up by a later run once idle.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update

from bot.conversation import texts as M
from bot.app import Kiezstimme
from bot.conversation.step import Msg, Reply
from bot.delivery.outbox import Audience, BulkResult, audience_query, enqueue_bulk
from bot.participation.phases import Phase, ReminderPoint, phase_announcements, reminder_points
from bot.storage.models import Feedback, Idea, Session
from bot.values import Capabilities
from channels.registry import bulk_names

log = logging.getLogger(__name__)
IDLE_AFTER = timedelta(minutes=15)  # a dialogue untouched this long no longer counts as "in progress"
RETRY_EVERY = timedelta(minutes=10)
NEUTRAL = Capabilities()  # bulk texts have no choices; each channel splits them its way when enqueued


@dataclass
class ReminderRun:
    point: str
    general: BulkResult = field(default_factory=BulkResult)
    personal: BulkResult = field(default_factory=BulkResult)
    skipped_done: int = 0
    deferred: int = 0
    late: bool = False

    @property
    def enqueued(self) -> int:
        return self.general.total + self.personal.total


def in_every_language(
    kz: Kiezstimme, msgid: str | tuple[str, str], params: dict[str, Any] | None = None, count: str | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """One message rendered in each language: (texts, directions) by language code."""
    singular, plural = (msgid, None) if isinstance(msgid, str) else msgid
    texts, directions = {}, {}
    for tr in kz.catalogs:
        reply = Reply(singular, tr.language.code, params or {}, plural=plural, count=count)
        out = kz.service.renderer.render(reply, NEUTRAL)
        texts[tr.language.code] = out.text
        directions[tr.language.code] = out.direction
    return texts, directions


def _left(deadline: datetime, now: datetime) -> tuple[int, bool]:
    """(count, in_days): whole days left, or hours when less than a day."""
    remaining = deadline - now
    if remaining >= timedelta(days=1):
        return max(1, round(remaining / timedelta(days=1))), True
    return max(1, math.ceil(remaining / timedelta(hours=1))), False


async def _classify(kz: Kiezstimme, phase: Phase, now: datetime) -> tuple[list[int], list[int], int, int]:
    """(general ids, personal ids, skipped because done, deferred because busy)."""
    dialogues = phase.dialogues
    base = audience_query(Audience(), bulk_names()).subquery()
    async with kz.db.read() as conn:
        ids = set((await conn.execute(select(base.c.resident_id).distinct())).scalars())
        done: set[int] = set()
        if "idea" in dialogues:
            done |= set((await conn.execute(
                select(Idea.resident_id).where(Idea.created_at >= phase.starts, Idea.created_at <= phase.ends)
            )).scalars())
        if "feedback" in dialogues:
            done |= set((await conn.execute(
                select(Feedback.resident_id).where(Feedback.created_at >= phase.starts, Feedback.created_at <= phase.ends)
            )).scalars())
        sessions = (await conn.execute(
            select(Session.resident_id, Session.state, Session.updated_at).where(Session.resident_id.in_(ids))
        )).all() if ids else []
    general, personal, deferred = [], [], 0
    by_id = {s.resident_id: s for s in sessions}
    for rid in ids - done:
        session = by_id.get(rid)
        node = (session.state or {}).get("node") if session else None
        if node and session.updated_at > now - IDLE_AFTER:
            deferred += 1  # busy: do not interrupt; a later run picks them up
        elif node and node.split(".")[0] in dialogues and not node.endswith(".start"):
            personal.append(rid)
        else:
            general.append(rid)
    return sorted(general), sorted(personal), len(ids & done), deferred


async def send_reminder(kz: Kiezstimme, point: ReminderPoint, now: datetime) -> ReminderRun:
    run = ReminderRun(point.id)
    if now >= point.deadline:
        run.late = True
        log.info("%s: the deadline has passed; nothing sent", point.id)
        return run
    general, personal, run.skipped_done, run.deferred = await _classify(kz, point.phase, now)
    count, in_days = _left(point.deadline, now)
    params = {"count": count, "phase": Msg(point.phase.name), "date": point.deadline.astimezone(kz.settings.zone).date()}
    channels = kz.channels.bulk_targets()
    for ids, days_msg, hours_msg, target in (
        (general, M.REMINDER_DAYS, M.REMINDER_HOURS, "general"),
        (personal, M.REMINDER_UNFINISHED_DAYS, M.REMINDER_UNFINISHED_HOURS, "personal"),
    ):
        if not ids:
            continue
        texts, directions = in_every_language(kz, days_msg if in_days else hours_msg, params, "count")
        result = await enqueue_bulk(
            kz.db, key=point.id, texts=texts, audience=Audience(resident_ids=tuple(ids)), channels=channels,
            now=now, expires_at=point.deadline, directions=directions,
        )
        setattr(run, target, result)
    kz.sender.wake()
    log.info("%s: %d enqueued (%d personal), %d already took part, %d busy for now",
             point.id, run.enqueued, run.personal.total, run.skipped_done, run.deferred)
    return run


async def send_announcement(kz: Kiezstimme, phase: Phase, now: datetime) -> BulkResult:
    """The phase's start announcement to everyone who opted in (once, whenever called)."""
    if not phase.announcement or now >= phase.ends:
        return BulkResult()
    texts, directions = in_every_language(kz, phase.announcement)
    result = await enqueue_bulk(
        kz.db, key=f"announce:{phase.id}", texts=texts, audience=Audience(), channels=kz.channels.bulk_targets(),
        now=now, expires_at=phase.ends, directions=directions,
    )
    kz.sender.wake()
    log.info("announcement of phase %s: %d enqueued", phase.id, result.total)
    return result


STATUS_MESSAGES = {"approved": M.IDEA_APPROVED, "hidden": M.IDEA_HIDDEN}


async def set_idea_status(kz: Kiezstimme, reference: str, status: str, now: datetime, notify: bool = True) -> tuple[bool, int]:
    """Change an idea's status; tell the resident (if they opted in). (found, notices enqueued)."""
    async with kz.db.transaction() as conn:
        row = (await conn.execute(select(Idea.id, Idea.resident_id).where(Idea.reference == reference.upper()))).first()
        if row is None:
            return False, 0
        await conn.execute(update(Idea).where(Idea.id == row.id).values(status=status))
    msgid = STATUS_MESSAGES.get(status)
    if not notify or msgid is None:
        return True, 0
    texts, directions = in_every_language(kz, msgid, {"reference": reference.upper()})
    result = await enqueue_bulk(
        kz.db, key=f"status:{reference.upper()}:{status}", texts=texts,
        audience=Audience(resident_ids=(row.resident_id,)), channels=kz.channels.bulk_targets(),
        now=now, directions=directions,
    )
    kz.sender.wake()
    return True, result.total


def schedule(kz: Kiezstimme, now: datetime) -> list[tuple[str, datetime, str]]:
    """(job id, send time, what) for every reminder and announcement, from the data."""
    zone = kz.settings.zone
    jobs = [(p.id, p.send_at, f"reminder {p.offset} before {p.phase.id} ends") for p in reminder_points(kz.flows.process, zone)]
    jobs += [(f"announce:{ph.id}", at, f"announcement of {ph.id}") for ph, at in phase_announcements(kz.flows.process, zone)]
    return sorted(jobs, key=lambda j: j[1])
