"""The participation process as data: phases with dates, the dialogues open in
each, reminder offsets before each phase's end, quiet hours.

Dates are written in local time (``TIMEZONE``, Europe/Berlin by default) and
handled as aware datetimes; everything that is stored is UTC. All functions
here are pure: they are given ``now``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

_OFFSET = re.compile(r"^\s*(\d+)\s*([dhm])\s*$")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


@dataclass(frozen=True)
class Phase:
    id: str
    name: str  # msgid
    starts: datetime  # aware, UTC
    ends: datetime  # aware, UTC
    dialogues: tuple[str, ...] = ()
    reminders: tuple[str, ...] = ()  # e.g. "7d", "2d", "3h"
    description: str | None = None  # msgid
    announcement: str | None = None  # msgid, sent to subscribers when the phase starts
    line: int = 1

    def state(self, now: datetime) -> str:
        if now < self.starts:
            return "upcoming"
        return "open" if now < self.ends else "closed"


@dataclass(frozen=True)
class QuietHours:
    start: time = time(21, 0)
    end: time = time(8, 0)

    def contains(self, local: datetime) -> bool:
        t = local.timetz().replace(tzinfo=None)
        if self.start <= self.end:
            return self.start <= t < self.end
        return t >= self.start or t < self.end

    def next_end(self, local: datetime) -> datetime:
        """The first moment after ``local`` when quiet hours are over (same zone)."""
        candidate = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if candidate <= local:
            candidate = (local + timedelta(days=1)).replace(
                hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0
            )
        # re-anchor in the zone so a DST change in between is respected
        return datetime.combine(candidate.date(), self.end, tzinfo=local.tzinfo)


@dataclass(frozen=True)
class Process:
    phases: tuple[Phase, ...] = ()
    quiet_hours: QuietHours = field(default_factory=QuietHours)
    grace: timedelta = timedelta(minutes=30)  # a dialogue started before the end may finish

    def phase(self, phase_id: str) -> Phase | None:
        return next((p for p in self.phases if p.id == phase_id), None)

    def phase_for(self, dialogue: str, now: datetime) -> Phase | None:
        """The phase of a dialogue that matters at ``now``: open, else next, else last."""
        mine = [p for p in self.phases if dialogue in p.dialogues]
        if not mine:
            return None
        for p in mine:
            if p.state(now) == "open":
                return p
        upcoming = [p for p in mine if p.state(now) == "upcoming"]
        if upcoming:
            return min(upcoming, key=lambda p: p.starts)
        return max(mine, key=lambda p: p.ends)

    def is_open(self, dialogue: str, now: datetime) -> bool:
        """A dialogue no phase mentions is always open."""
        phase = self.phase_for(dialogue, now)
        return phase is None or phase.state(now) == "open"


def parse_offset(text: str) -> timedelta:
    match = _OFFSET.match(str(text))
    if not match:
        raise ValueError(f"reminder offset {text!r} is not like 7d, 2d, 3h or 30m")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def parse_local(value: Any, zone: ZoneInfo) -> datetime:
    """A local date-time from YAML (``2027-01-02 23:59`` or a date) as UTC."""
    if isinstance(value, datetime):
        local = value if value.tzinfo else value.replace(tzinfo=zone)
    elif isinstance(value, date):
        local = datetime.combine(value, time(0, 0), tzinfo=zone)
    else:
        local = datetime.fromisoformat(str(value).strip())
        local = local if local.tzinfo else local.replace(tzinfo=zone)
    return local.astimezone(UTC)


@dataclass(frozen=True)
class ReminderPoint:
    """One reminder: phase, offset, when it is due and when it is sent (quiet hours)."""

    phase: Phase
    offset: str
    due: datetime  # UTC: end - offset
    send_at: datetime  # UTC: due, moved out of quiet hours unless that passes the deadline

    @property
    def id(self) -> str:
        return f"reminder:{self.phase.id}:{self.offset}"

    @property
    def deadline(self) -> datetime:
        return self.phase.ends


def outside_quiet_hours(when: datetime, deadline: datetime | None, quiet: QuietHours, zone: ZoneInfo) -> datetime:
    """``when`` (UTC), postponed to the end of quiet hours unless that is past the deadline."""
    local = when.astimezone(zone)
    if not quiet.contains(local):
        return when
    later = quiet.next_end(local).astimezone(UTC)
    if deadline is not None and later >= deadline:
        return when  # the last chance: better at night than after the deadline
    return later


def reminder_points(process: Process, zone: ZoneInfo) -> list[ReminderPoint]:
    points = []
    for phase in process.phases:
        for offset in phase.reminders:
            # offsets count in local wall-clock time: "2 days before" is the same hour two days earlier
            local_end = phase.ends.astimezone(zone)
            delta = parse_offset(offset)
            if delta.days and not delta.seconds:
                local_due = datetime.combine(
                    local_end.date() - timedelta(days=delta.days), local_end.timetz().replace(tzinfo=None), tzinfo=zone
                )
                due = local_due.astimezone(UTC)
            else:
                due = phase.ends - delta
            if due < phase.starts:
                continue
            points.append(
                ReminderPoint(phase, offset, due, outside_quiet_hours(due, phase.ends, process.quiet_hours, zone))
            )
    return sorted(points, key=lambda p: p.send_at)


def phase_announcements(process: Process, zone: ZoneInfo) -> list[tuple[Phase, datetime]]:
    """(phase, send time) for every phase with an announcement, quiet hours respected."""
    return [
        (p, outside_quiet_hours(p.starts, p.ends, process.quiet_hours, zone)) for p in process.phases if p.announcement
    ]


def _phase_reminders(item: dict[str, Any], where: str, problems: list[str]) -> tuple[str, ...]:
    reminders = tuple(str(r) for r in item.get("reminders") or ())
    for r in reminders:
        try:
            parse_offset(r)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
    return reminders


def _load_phase(
    item: Any, zone: ZoneInfo, file: str, problems: list[str], seen: set[str], dialogues: set[str]
) -> Phase | None:
    """One entry of ``phases``; None (with the problem noted) when it cannot be read."""
    line = item.get("__line__", 1) if isinstance(item, dict) else 1
    where = f"{file}:{line}"
    if not isinstance(item, dict):
        problems.append(f"{where}: a phase must be a mapping")
        return None
    try:
        pid = str(item["id"])
        starts = parse_local(item["starts"], zone)
        ends = parse_local(item["ends"], zone)
        name = str(item["name"])
    except KeyError as exc:
        problems.append(f"{where}: phase needs {exc.args[0]!r}")
        return None
    except ValueError as exc:
        problems.append(f"{where}: phase has a date that is not like 2027-01-02 23:59 ({exc})")
        return None
    if pid in seen:
        problems.append(f"{where}: phase id {pid!r} is used twice")
    seen.add(pid)
    if ends <= starts:
        problems.append(f"{where}: phase {pid!r} ends before it starts")
    reminders = _phase_reminders(item, where, problems)
    opened = tuple(str(d) for d in item.get("dialogues") or ())
    for d in opened:
        if d not in dialogues:
            problems.append(f"{where}: phase {pid!r} opens unknown dialogue {d!r}")
    return Phase(
        id=pid,
        name=name,
        starts=starts,
        ends=ends,
        dialogues=opened,
        reminders=reminders,
        description=item.get("description"),
        announcement=item.get("announcement"),
        line=line,
    )


def _load_quiet_hours(data: dict[str, Any], file: str, problems: list[str]) -> QuietHours:
    if not data.get("quiet_hours"):
        return QuietHours()
    q = data["quiet_hours"]
    try:
        return QuietHours(time.fromisoformat(str(q["start"])), time.fromisoformat(str(q["end"])))
    except (KeyError, ValueError, TypeError):
        problems.append(
            f"{file}:{q.get('__line__', 1) if isinstance(q, dict) else 1}: "
            "quiet_hours needs start and end like 21:00 and 08:00"
        )
        return QuietHours()


def load_process(data: dict[str, Any], zone: ZoneInfo, file: str, problems: list[str], dialogues: set[str]) -> Process:
    """Read ``phases``, ``quiet_hours`` and ``grace_minutes`` from process.yaml."""
    phases = []
    seen: set[str] = set()
    for item in data.get("phases") or []:
        phase = _load_phase(item, zone, file, problems, seen, dialogues)
        if phase is not None:
            phases.append(phase)
    quiet = _load_quiet_hours(data, file, problems)
    grace = timedelta(minutes=float(data.get("grace_minutes", 30)))
    return Process(tuple(phases), quiet, grace)
