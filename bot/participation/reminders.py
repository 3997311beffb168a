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

import hashlib
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.app import Kiezstimme
from bot.conversation import texts as M
from bot.conversation.engine import contact_of
from bot.conversation.phases import Phase, ReminderPoint, phase_announcements, reminder_points
from bot.conversation.session import Conversation
from bot.conversation.step import Context, Msg, Remind, ReminderDue, Reply
from bot.delivery.outbox import Audience, BulkResult, enqueue_bulk
from bot.storage.audience import AudienceRepository
from bot.storage.contributions import ContributionRepository
from bot.storage.sessions import SessionRepository
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
    ids = await AudienceRepository(kz.db).residents(Audience(), bulk_names())
    done = await ContributionRepository(kz.db).participants(
        phase.starts, phase.ends, ideas="idea" in dialogues, feedback="feedback" in dialogues
    )
    by_id = await SessionRepository(kz.db).of_residents(ids)
    due = ReminderDue(tuple(dialogues), idle_after=IDLE_AFTER)
    ctx = Context(now=now, new_reference="")
    general, personal, deferred = [], [], 0
    for rid in ids - done:
        session = by_id.get(rid)
        if session is None:
            general.append(rid)
            continue
        outcome = kz.engine.step(Conversation(dialogue=session.dialogue), due, ctx)
        kind = next((e.kind for e in outcome.effects if isinstance(e, Remind)), "general")
        if kind == "later":
            deferred += 1  # busy: do not interrupt; a later run picks them up
        elif kind == "personal":
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
    params = {
        "count": count,
        "phase": Msg(point.phase.name),
        "date": point.deadline.astimezone(kz.settings.zone).date(),
    }
    channels = kz.channels.bulk_targets()
    for ids, days_msg, hours_msg, target in (
        (general, M.REMINDER_DAYS, M.REMINDER_HOURS, "general"),
        (personal, M.REMINDER_UNFINISHED_DAYS, M.REMINDER_UNFINISHED_HOURS, "personal"),
    ):
        if not ids:
            continue
        texts, directions = in_every_language(kz, days_msg if in_days else hours_msg, params, "count")
        result = await enqueue_bulk(
            kz.db,
            key=point.id,
            texts=texts,
            audience=Audience(resident_ids=tuple(ids)),
            channels=channels,
            now=now,
            expires_at=point.deadline,
            directions=directions,
        )
        setattr(run, target, result)
    kz.sender.wake()
    log.info(
        "%s: %d enqueued (%d personal), %d already took part, %d busy for now",
        point.id,
        run.enqueued,
        run.personal.total,
        run.skipped_done,
        run.deferred,
    )
    return run


async def send_announcement(kz: Kiezstimme, phase: Phase, now: datetime) -> BulkResult:
    """The phase's start announcement to everyone who opted in (once, whenever called)."""
    if not phase.announcement or now >= phase.ends:
        return BulkResult()
    texts, directions = in_every_language(kz, phase.announcement)
    result = await enqueue_bulk(
        kz.db,
        key=f"announce:{phase.id}",
        texts=texts,
        audience=Audience(),
        channels=kz.channels.bulk_targets(),
        now=now,
        expires_at=phase.ends,
        directions=directions,
    )
    kz.sender.wake()
    log.info("announcement of phase %s: %d enqueued", phase.id, result.total)
    return result


STATUS_MESSAGES = {"approved": M.IDEA_APPROVED, "hidden": M.IDEA_HIDDEN}


async def set_idea_status(
    kz: Kiezstimme,
    reference: str,
    status: str,
    now: datetime,
    notify: bool = True,
    *,
    note: str | None = None,
    internal_note: str | None = None,
) -> tuple[bool, int]:
    """Change an idea's status; tell the resident (if they opted in) when the status changed or
    there is a ``note`` — the organisers' own words, marked as theirs, after the notice. ``note``
    is kept as the idea's public note and ``internal_note`` for organisers only (``None`` leaves a
    note as it is, ``""`` clears it). (found, notices enqueued)."""
    ref = reference.upper()
    note = note.strip() if note is not None else None
    changed = await ContributionRepository(kz.db).set_idea_status(
        ref, status, public_note=note, internal_note=internal_note, now=now
    )
    if changed is None:
        return False, 0
    resident_id, before = changed
    msgid = STATUS_MESSAGES.get(status)
    if not notify or msgid is None or resident_id == 0:  # 0: kept as anonymous text, nobody to tell
        return True, 0
    if before == status and not note:  # nothing new to tell (a repeated command tells nothing twice)
        return True, 0
    params: dict[str, Any] = {"reference": ref, "contact": contact_of(kz.flows)}
    if status == "approved" and kz.flows.publication_url:
        # "published" only where ideas are published, with the address to see them
        msgid, params["url"] = M.IDEA_PUBLISHED, kz.flows.publication_url
    texts, directions = in_every_language(kz, msgid, params)
    # one notice per change: approved, hidden and approved again is told three times
    key = f"status:{ref}:{before}>{status}:{int(now.timestamp() * 1000)}"
    if note:
        notes, _ = in_every_language(kz, M.IDEA_STATUS_NOTE, {"note": note})
        texts = {code: f"{text}\n\n{notes[code]}" for code, text in texts.items()}
        key += ":" + hashlib.sha256(note.encode()).hexdigest()[:12]
    result = await enqueue_bulk(
        kz.db,
        key=key,
        texts=texts,
        audience=Audience(resident_ids=(resident_id,)),
        channels=kz.channels.bulk_targets(),
        now=now,
        directions=directions,
    )
    kz.sender.wake()
    return True, result.total


def schedule(kz: Kiezstimme, now: datetime) -> list[tuple[str, datetime, str]]:
    """(job id, send time, what) for every reminder and announcement, from the data."""
    zone = kz.settings.zone
    jobs = [
        (p.id, p.send_at, f"reminder {p.offset} before {p.phase.id} ends")
        for p in reminder_points(kz.flows.process, zone)
    ]
    jobs += [
        (f"announce:{ph.id}", at, f"announcement of {ph.id}") for ph, at in phase_announcements(kz.flows.process, zone)
    ]
    return sorted(jobs, key=lambda j: j[1])
