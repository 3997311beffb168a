"""The scheduler: APScheduler 3 fires reminders and phase announcements, runs the
retention purge daily (``retention:purge``) and queues broadcasts organisers scheduled
for a time (``broadcasts:due``, every ``BROADCAST_CHECK``: they are kept in the
``broadcasts`` table, not in a job store).

Jobs are recreated from the process data at every start with stable ids
(``reminder:collection:2d``, ``announce:feedback``) and ``replace_existing``,
so there is no job store to share or migrate: changing a deadline in
``flows/process.yaml`` and restarting moves its reminders. A job whose time
passed while the scheduler was down runs if it is within
``REMINDER_GRACE_MINUTES``; otherwise APScheduler skips it and logs that.
Run exactly one scheduler: inside ``serve`` on SQLite, as ``python -m bot
clock`` on PostgreSQL. Sending twice is harmless anyway (idempotency keys).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.app import Kiezstimme
from bot.conversation.phases import reminder_points
from bot.participation.broadcasts import queue_due
from bot.participation.reminders import RETRY_EVERY, send_announcement, send_reminder
from bot.participation.retention import purge_now

log = logging.getLogger(__name__)

# the retention purge (bot/participation/retention.py): daily at a quiet hour, local time; if
# the scheduler was down then, it still runs within PURGE_GRACE (several missed runs: once) —
# otherwise the next day's run takes what is due, as every run takes all that is due
PURGE_JOB = "retention:purge"
PURGE_AT = {"hour": 3, "minute": 30}
PURGE_GRACE = timedelta(hours=12)
# scheduled broadcasts (bot/participation/broadcasts.py): due ones are queued within this long
BROADCASTS_JOB = "broadcasts:due"
BROADCAST_CHECK = timedelta(seconds=20)


class ReminderClock:
    def __init__(self, kz: Kiezstimme, grace: timedelta = timedelta(minutes=60)) -> None:
        self.kz = kz
        self.grace = grace
        self.scheduler = AsyncIOScheduler(timezone=UTC)

    def _add(self, job_id: str, when: datetime, func, *args) -> None:
        self.scheduler.add_job(
            func,
            DateTrigger(run_date=when, timezone=UTC),
            args=args,
            id=job_id,
            replace_existing=True,
            misfire_grace_time=int(self.grace.total_seconds()),
            coalesce=True,
            max_instances=1,
        )

    def plan(self) -> None:
        """(Re)create every job from the process data."""
        zone = self.kz.settings.zone
        for point in reminder_points(self.kz.flows.process, zone):
            self._add(point.id, point.send_at, self.fire_reminder, point.id)
        for phase in self.kz.flows.process.phases:
            if phase.announcement:
                from bot.conversation.phases import outside_quiet_hours

                at = outside_quiet_hours(phase.starts, phase.ends, self.kz.flows.process.quiet_hours, zone)
                self._add(f"announce:{phase.id}", at, self.fire_announcement, phase.id)
        self.scheduler.add_job(
            self.fire_purge,
            CronTrigger(**PURGE_AT, timezone=zone),
            id=PURGE_JOB,
            replace_existing=True,
            misfire_grace_time=int(PURGE_GRACE.total_seconds()),
            coalesce=True,
            max_instances=1,
        )

        self.scheduler.add_job(
            self.fire_broadcasts,
            IntervalTrigger(seconds=int(BROADCAST_CHECK.total_seconds()), timezone=UTC),
            id=BROADCASTS_JOB,
            replace_existing=True,
            misfire_grace_time=int(BROADCAST_CHECK.total_seconds()),
            coalesce=True,
            max_instances=1,
        )

    async def fire_reminder(self, point_id: str) -> None:
        point = next(
            (p for p in reminder_points(self.kz.flows.process, self.kz.settings.zone) if p.id == point_id), None
        )
        if point is None:
            return
        now = self.kz.service.clock()
        run = await send_reminder(self.kz, point, now)
        if run.deferred and now + RETRY_EVERY < point.deadline:
            # residents who were mid-dialogue: try again once they may be idle
            self._add(f"{point.id}:later", now + RETRY_EVERY, self.fire_reminder, point.id)

    async def fire_announcement(self, phase_id: str) -> None:
        phase = self.kz.flows.process.phase(phase_id)
        if phase is not None:
            await send_announcement(self.kz, phase, self.kz.service.clock())

    async def fire_purge(self) -> None:
        await purge_now(self.kz.settings, self.kz.db, self.kz.flows.process, self.kz.service.clock())

    async def fire_broadcasts(self) -> None:
        try:
            queued = await queue_due(self.kz)
        except Exception:  # the next check tries again; the scheduler must keep running
            log.exception("queuing scheduled broadcasts failed")
            return
        if queued:
            log.info("scheduled broadcasts queued: %s", ", ".join(map(str, queued)))

    def start(self) -> None:
        self.plan()
        self.scheduler.start()
        upcoming = [j for j in self.scheduler.get_jobs() if j.next_run_time]
        log.info("scheduler started with %d jobs", len(upcoming))

    def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
