"""Retention: personal data is kept only as long as it is needed (issue 12).

Three periods, set by the operator (``RETENTION_*``, see the README):

- **delivery** — the delivery log (``outbound_messages``) keeps a message's text,
  choices and address for ``RETENTION_DELIVERY_DAYS`` (30) after it was queued; then the
  row stays (status, time, segments, for the reports) without them. A message still
  waiting by then is not sent any more.
- **inbox** — inbox rows that still keep contents (a failed or set-aside message;
  processed ones are emptied at once) are emptied ``RETENTION_INBOX_DAYS`` (7) after
  they arrived.
- **contact** — residents' channel identities (how they are reached) and sessions go
  ``RETENTION_CONTACT_DAYS_AFTER_LAST_PHASE`` (90) days after the last phase of the
  process ends; someone who wrote after that keeps theirs until as many days after their
  last message. Ideas and feedback stay, pseudonymous. A resident whose contact data went
  cannot be reached any more (no reminder, notice or announcement).

:func:`plan` is pure — given ``now``, the periods and the process, what is due (the
cut-offs). :func:`purge` counts (``dry_run``) or applies it in short transactions on
SQLite and PostgreSQL, records the counts in ``purges`` and logs one line of counts —
never an address or a text. The scheduler runs it daily; ``python -m bot privacy purge``
on demand.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from bot.config import Settings
from bot.conversation.phases import Process
from bot.storage.db import Database
from bot.storage.purges import DELIVERY, IDENTITIES, INBOX, SESSIONS, PurgeRepository

log = logging.getLogger(__name__)

KINDS = (DELIVERY, INBOX, IDENTITIES, SESSIONS)


@dataclass(frozen=True)
class Periods:
    delivery: timedelta = timedelta(days=30)
    inbox: timedelta = timedelta(days=7)
    contact_after_last_phase: timedelta = timedelta(days=90)

    @classmethod
    def of(cls, settings: Settings) -> Periods:
        return cls(
            delivery=timedelta(days=settings.retention_delivery_days),
            inbox=timedelta(days=settings.retention_inbox_days),
            contact_after_last_phase=timedelta(days=settings.retention_contact_days_after_last_phase),
        )


@dataclass(frozen=True)
class Plan:
    """What is due at ``now``: rows older than each cut-off go."""

    now: datetime
    delivery_before: datetime
    inbox_before: datetime
    contact_before: datetime | None  # None: the contact period has not begun
    contact_from: datetime | None  # when contact data starts to go (None: the process has no phases)

    @property
    def cutoffs(self) -> dict[str, datetime]:
        """The cut-off of each kind that is due."""
        cutoffs = {DELIVERY: self.delivery_before, INBOX: self.inbox_before}
        if self.contact_before is not None:
            cutoffs |= {IDENTITIES: self.contact_before, SESSIONS: self.contact_before}
        return cutoffs


def plan(now: datetime, periods: Periods, process: Process) -> Plan:
    """The cut-offs at ``now``. Contact data is due from the end of the last phase plus its
    period on; from then on it goes once it has not been used for that period."""
    last_end = max((p.ends for p in process.phases), default=None)
    contact_from = None if last_end is None else last_end + periods.contact_after_last_phase
    contact_due = contact_from is not None and now >= contact_from
    return Plan(
        now=now,
        delivery_before=now - periods.delivery,
        inbox_before=now - periods.inbox,
        contact_before=now - periods.contact_after_last_phase if contact_due else None,
        contact_from=contact_from,
    )


@dataclass
class Result:
    plan: Plan
    counts: dict[str, int] = field(default_factory=dict)  # per kind that is due
    dry_run: bool = False

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def purge(
    db: Database, the_plan: Plan, *, media_dir: Path | None = None, dry_run: bool = False, batch: int = 500
) -> Result:
    """Count (``dry_run``: nothing changes, nothing is recorded) or apply what is due, kind
    by kind in short transactions; record and log the counts."""
    repo = PurgeRepository(db, batch=batch)
    if dry_run:
        counts = await repo.count(the_plan.delivery_before, the_plan.inbox_before, the_plan.contact_before)
        return Result(the_plan, counts, dry_run=True)
    counts = {
        DELIVERY: await repo.empty_delivery(the_plan.delivery_before, the_plan.now),
        INBOX: await repo.empty_inbox(the_plan.inbox_before),
    }
    if the_plan.contact_before is not None:
        identities, sessions, files = await repo.remove_contact_data(the_plan.contact_before, the_plan.now)
        counts |= {IDENTITIES: identities, SESSIONS: sessions}
        if media_dir is not None:
            _unlink(media_dir, files)
    await repo.record(the_plan.now, counts, the_plan.cutoffs)
    log.info("retention purge: %s", ", ".join(f"{kind} {count}" for kind, count in counts.items()))
    return Result(the_plan, counts)


async def purge_now(
    settings: Settings, db: Database, process: Process, now: datetime, *, dry_run: bool = False
) -> Result:
    """:func:`purge` with the operator's periods at ``now``."""
    return await purge(db, plan(now, Periods.of(settings), process), media_dir=settings.media_dir, dry_run=dry_run)


def _unlink(root: Path, refs: list[str]) -> None:
    """Files only a removed session referred to (taken in a dialogue that was never finished)."""
    base = root.resolve()
    for ref in refs:
        path = (base / ref).resolve()
        if ref and base in path.parents and path.exists():
            path.unlink()
