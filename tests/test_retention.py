"""Retention (issue 12): the delivery log's texts, kept inbox contents and residents'
contact data go after their periods — with the injected clock, on SQLite and
PostgreSQL; the dry run changes nothing and counts what the real run then does; the
purge is recorded, scheduled daily and runs from the command line."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection

from bot.app import Kiezstimme, build
from bot.config import ConfigError, load_settings
from bot.conversation.phases import Phase, Process
from bot.participation.retention import Periods, plan, purge, purge_now
from bot.participation.scheduler import PURGE_JOB, ReminderClock
from bot.storage.db import Database
from bot.storage.models import (
    ChannelIdentity,
    Feedback,
    Idea,
    InboundMessage,
    OutboundMessage,
    Purge,
    Resident,
    Session,
)
from tests.conftest import Clock
from tests.test_phases import ALMOST, process_with, webchat

ROOT = Path(__file__).resolve().parent.parent
BERLIN = ZoneInfo("Europe/Berlin")
DAY = timedelta(days=1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- the periods and the plan (pure) ---------------------------------------------------------------


def test_periods_are_read_and_checked_naming_the_variable() -> None:
    defaults = load_settings({})
    assert (
        defaults.retention_delivery_days,
        defaults.retention_inbox_days,
        defaults.retention_contact_days_after_last_phase,
    ) == (30, 7, 90)
    given = load_settings({"RETENTION_DELIVERY_DAYS": "3", "RETENTION_INBOX_DAYS": "0"})
    assert Periods.of(given) == Periods(timedelta(days=3), timedelta(0), timedelta(days=90))
    for name, value in [
        ("RETENTION_DELIVERY_DAYS", "-1"),
        ("RETENTION_INBOX_DAYS", "1.5"),
        ("RETENTION_CONTACT_DAYS_AFTER_LAST_PHASE", "ninety"),
    ]:
        with pytest.raises(ConfigError) as info:
            load_settings({name: value})
        message = str(info.value)
        assert name in message and value in message and "\n" not in message


def test_plan_cutoffs_and_contact_only_after_the_last_phase_plus_its_period() -> None:
    phases = (
        Phase("a", "A", utc("2027-01-01 00:00"), utc("2027-02-01 00:00")),
        Phase("b", "B", utc("2027-03-01 00:00"), utc("2027-04-01 00:00")),
    )
    process = Process(phases=phases)
    periods = Periods(timedelta(days=30), timedelta(days=7), timedelta(days=90))
    during = plan(utc("2027-03-15 03:30"), periods, process)
    assert during.delivery_before == utc("2027-02-13 03:30") and during.inbox_before == utc("2027-03-08 03:30")
    assert during.contact_before is None and during.contact_from == utc("2027-06-30 00:00")
    assert set(during.cutoffs) == {"delivery", "inbox"}
    just_before = plan(utc("2027-06-29 23:59"), periods, process)
    assert just_before.contact_before is None
    due = plan(utc("2027-06-30 00:00"), periods, process)
    assert due.contact_before == utc("2027-04-01 00:00")  # everyone who last wrote before the end
    assert due.cutoffs["identities"] == due.cutoffs["sessions"] == utc("2027-04-01 00:00")
    later = plan(utc("2027-08-01 00:00"), periods, process)
    assert later.contact_before == utc("2027-05-03 00:00")  # who wrote after the end: 90 days after that
    assert plan(utc("2027-08-01 00:00"), periods, Process()).contact_before is None  # no phases: nothing to wait for
    zero = plan(utc("2027-08-01 00:00"), Periods(timedelta(0), timedelta(0), timedelta(0)), process)
    assert zero.delivery_before == zero.inbox_before == zero.contact_before == utc("2027-08-01 00:00")


# --- delivery log and inbox --------------------------------------------------------------------------


def _outbox(conn: Connection, now: datetime, age: timedelta, status: str, text: str = "Ihre Idee: Bäume") -> int:
    return int(
        conn.execute(
            insert(OutboundMessage).returning(OutboundMessage.id),
            {
                "channel": "sms",
                "address": "+4915790001234" if text else None,
                "language": "de",
                "text": text,
                "payload": {"choices": ["1"]} if text else {},
                "priority": 0,
                "status": status,
                "attempts": 1,
                "created_at": now - age,
            },
        ).scalar_one()
    )


def _inbox(conn: Connection, now: datetime, age: timedelta, status: str, payload: Any, address: str | None) -> int:
    return int(
        conn.execute(
            insert(InboundMessage).returning(InboundMessage.id),
            {
                "channel": "sms",
                "provider_id": os.urandom(8).hex(),
                "address": address,
                "payload": payload,
                "status": status,
                "received_at": now - age,
            },
        ).scalar_one()
    )


async def _rows(db: Database, model: Any) -> dict[int, Any]:
    return await db.run(lambda conn: {r.id: r for r in conn.execute(select(model.__table__))}, write=False)


async def _records(db: Database) -> list[Any]:
    query = select(Purge.kind, Purge.count, Purge.cutoff, Purge.ran_at).order_by(Purge.id)
    return await db.run(lambda conn: list(conn.execute(query)), write=False)


async def test_delivery_texts_and_kept_inbox_contents_go_after_their_periods(
    db: Database, database_url: str, clock: Clock
) -> None:
    now = clock.now
    settings = load_settings({"DATABASE_URL": database_url})

    def setup(conn: Connection) -> dict[str, int]:
        def older(days: float) -> timedelta:
            return timedelta(days=days)

        return {
            "old_delivered": _outbox(conn, now, older(31), "delivered"),
            "old_failed": _outbox(conn, now, older(45), "failed"),
            "old_waiting": _outbox(conn, now, older(30.5), "pending"),  # never fetched (web chat)
            "old_sending": _outbox(conn, now, older(40), "sending"),  # being sent right now
            "old_empty": _outbox(conn, now, older(60), "delivered", text=""),  # emptied before (erasure)
            "young": _outbox(conn, now, older(29), "delivered"),
            "in_old_failed": _inbox(conn, now, older(8), "failed", {"text": "kaputt"}, "+4915790001234"),
            "in_old_aside": _inbox(conn, now, older(7.5), "aside", {"text": "?"}, None),
            "in_old_pending": _inbox(conn, now, older(20), "pending", {"text": "wartet"}, "+4915790001234"),
            "in_old_done": _inbox(conn, now, older(9), "done", None, None),  # emptied when processed
            "in_young": _inbox(conn, now, older(6), "failed", {"text": "neu"}, "+4915790001234"),
        }

    ids = await db.run(setup)
    before = (await _rows(db, OutboundMessage), await _rows(db, InboundMessage))

    dry = await purge_now(settings, db, Process(), now, dry_run=True)
    assert dry.counts == {"delivery": 3, "inbox": 2}
    assert (await _rows(db, OutboundMessage), await _rows(db, InboundMessage)) == before  # nothing changed
    assert await _records(db) == []  # and nothing recorded

    done = await purge_now(settings, db, Process(), now)
    assert done.counts == dry.counts
    out, inbox = await _rows(db, OutboundMessage), await _rows(db, InboundMessage)
    for name in ("old_delivered", "old_failed", "old_waiting"):
        row = out[ids[name]]
        assert (row.text, row.payload, row.address) == ("", {}, None), name
    assert out[ids["old_delivered"]].status == "delivered" and out[ids["old_delivered"]].segments is None
    assert out[ids["old_waiting"]].status == "expired"  # no longer sent
    assert out[ids["old_sending"]].text and out[ids["old_sending"]].status == "sending"
    assert out[ids["young"]].text == "Ihre Idee: Bäume" and out[ids["young"]].address
    for name in ("in_old_failed", "in_old_aside"):
        assert inbox[ids[name]].payload is None and inbox[ids[name]].address is None, name
    assert inbox[ids["in_old_pending"]].payload == {"text": "wartet"}  # still to be processed
    assert inbox[ids["in_young"]].payload == {"text": "neu"} and inbox[ids["in_young"]].address

    records = await _records(db)
    assert [(r.kind, r.count, r.cutoff, r.ran_at) for r in records] == [
        ("delivery", 3, now - 30 * DAY, now),
        ("inbox", 2, now - 7 * DAY, now),
    ]
    # a day later the young ones are due; what went is not counted again
    clock.advance(days=2)
    again = await purge_now(settings, db, Process(), clock.now)
    assert again.counts == {"delivery": 1, "inbox": 1}
    assert len(await _records(db)) == 4


async def test_small_batches_take_everything_in_several_transactions(db: Database, clock: Clock) -> None:
    now = clock.now
    await db.run(lambda conn: [_outbox(conn, now, timedelta(days=40), "delivered") for _ in range(7)])
    the_plan = plan(now, Periods(), Process())
    assert (await purge(db, the_plan, dry_run=True)).counts["delivery"] == 7
    assert (await purge(db, the_plan, batch=3)).counts["delivery"] == 7
    assert {r.text for r in (await _rows(db, OutboundMessage)).values()} == {""}


# --- contact data after the last phase ---------------------------------------------------------------


@pytest_asyncio.fixture
async def phased(db: Database, database_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Kiezstimme]:
    # collection 2026-11-01 – 2027-01-02, feedback 2030-01-01 – 2030-02-01 23:59 Berlin (the last phase)
    flows = process_with(tmp_path, "2026-11-01 00:00", "2027-01-02 23:59")
    settings = load_settings(
        {"DATABASE_URL": database_url, "FLOWS_DIR": str(flows), "MEDIA_DIR": str(tmp_path / "media")}
    )
    kz = build(settings, clock=clock, db=db)
    yield kz
    await kz.sender.stop()


async def _newest_resident(kz: Kiezstimme) -> int:
    """The resident who came last (addresses are stored as keyed hashes: not looked up here)."""
    query = select(func.max(Resident.id))
    return int(await kz.db.run(lambda conn: conn.execute(query).scalar_one(), write=False))


async def _count(kz: Kiezstimme, model: Any, *where: Any) -> int:
    query = select(func.count()).select_from(model).where(*where)
    return int(await kz.db.run(lambda conn: conn.execute(query).scalar_one(), write=False))


async def test_contact_data_goes_after_the_last_phase_and_ideas_stay_pseudonymous(
    phased: Kiezstimme, clock: Clock
) -> None:
    kz = phased
    media = kz.settings.media_dir
    last_end = max(p.ends for p in kz.flows.process.phases)
    assert last_end == utc("2030-02-01 22:59")

    # November 2026: one resident gives an idea (with a photo), another stops at the summary
    replies = await webchat(kz, "done-resident", *ALMOST, "1")
    assert any("Ihre Nummer ist" in r for r in replies)
    done_id = await _newest_resident(kz)
    await webchat(kz, "half-resident", *ALMOST)
    half_id = await _newest_resident(kz)
    assert done_id != half_id
    (media / "2026/11").mkdir(parents=True)
    (media / "2026/11/idea.jpg").write_bytes(b"idea")
    (media / "2026/11/taken.jpg").write_bytes(b"taken")
    idea_photo = {"kind": "photo", "ref": "2026/11/idea.jpg", "mime": "image/jpeg", "size": 4}
    taken_photo = {"kind": "photo", "ref": "2026/11/taken.jpg", "mime": "image/jpeg", "size": 5}

    def attach(conn: Connection) -> None:
        conn.execute(update(Idea).where(Idea.resident_id == done_id).values(media=[idea_photo]))
        for rid, photo in ((done_id, idea_photo), (half_id, taken_photo)):
            state = conn.execute(select(Session.state).where(Session.resident_id == rid)).scalar_one()
            conn.execute(
                update(Session)
                .where(Session.resident_id == rid)
                .values(state=state | {"vars": state["vars"] | {"photo": photo}})
            )
        conn.execute(
            insert(Feedback),
            {
                "resident_id": done_id,
                "statement": "s1",
                "rating": "agree",
                "comment": "gut",
                "media": [],
                "language": "de",
                "channel": "webchat",
                "created_at": clock.now,
                "updated_at": clock.now,
            },
        )

    await kz.db.run(attach)
    # April 2030, after the last phase: someone writes for the first time
    clock.now = utc("2030-04-20 10:00")
    await webchat(kz, "late-resident", "Hallo")
    late_id = await _newest_resident(kz)
    assert late_id not in (done_id, half_id)

    # one minute before the last phase's end + 90 days: contact data is not due yet
    clock.now = last_end + 90 * DAY - timedelta(minutes=1)
    early = await purge_now(kz.settings, kz.db, kz.flows.process, clock.now)
    assert set(early.counts) == {"delivery", "inbox"}
    assert await _count(kz, ChannelIdentity) == 3 and await _count(kz, Session) == 3

    clock.now = last_end + 90 * DAY + timedelta(hours=4)
    dry = await purge_now(kz.settings, kz.db, kz.flows.process, clock.now, dry_run=True)
    assert (dry.counts["identities"], dry.counts["sessions"]) == (2, 2)
    assert await _count(kz, ChannelIdentity) == 3 and await _count(kz, Session) == 3  # the dry run changed nothing
    run = await purge_now(kz.settings, kz.db, kz.flows.process, clock.now)
    assert run.counts == dry.counts

    # the two early residents cannot be reached any more; their contributions stay, pseudonymous
    for rid in (done_id, half_id):
        assert await _count(kz, ChannelIdentity, ChannelIdentity.resident_id == rid) == 0
        assert await _count(kz, Session, Session.resident_id == rid) == 0
        assert await _count(kz, Resident, Resident.id == rid) == 1
        assert (
            await _count(kz, OutboundMessage, OutboundMessage.resident_id == rid, OutboundMessage.address.is_not(None))
            == 0
        )
    assert await _count(kz, Idea, Idea.resident_id == done_id) == 1
    assert await _count(kz, Feedback, Feedback.resident_id == done_id) == 1
    assert (media / "2026/11/idea.jpg").exists()  # the idea's photo stays with the idea
    assert not (media / "2026/11/taken.jpg").exists()  # only the unfinished dialogue referred to it
    records = await kz.db.run(
        lambda conn: (
            conn.execute(select(InboundMessage.provider_id).where(InboundMessage.resident_id == done_id))
            .scalars()
            .all()
        ),
        write=False,
    )
    assert records and all(p.startswith("purged-") for p in records)  # a web chat id named the client
    # the resident who wrote after the end keeps theirs until 90 days after their message
    assert await _count(kz, ChannelIdentity, ChannelIdentity.resident_id == late_id) == 1
    clock.now = utc("2030-04-20 10:00") + 90 * DAY + timedelta(minutes=5)
    assert (await purge_now(kz.settings, kz.db, kz.flows.process, clock.now)).counts["identities"] == 1
    assert await _count(kz, ChannelIdentity) == 0
    kinds = [r.kind for r in await _records(kz.db)]
    assert kinds.count("identities") == 2 and kinds.count("delivery") == 3


# --- scheduled daily ---------------------------------------------------------------------------------


async def test_the_scheduler_plans_the_daily_purge_and_runs_it_with_the_clock(phased: Kiezstimme, clock: Clock) -> None:
    kz = phased
    reminders = ReminderClock(kz)
    reminders.scheduler.start(paused=True)
    try:
        reminders.plan()
        reminders.plan()  # planned again (a restart, changed data): still the one job
        jobs = [j for j in reminders.scheduler.get_jobs() if j.id == PURGE_JOB]
    finally:
        reminders.stop()
    assert len(jobs) == 1
    job = jobs[0]
    assert job.coalesce is True and job.misfire_grace_time == 12 * 3600 and job.max_instances == 1
    # daily at 03:30 Berlin, across the DST change
    first = job.trigger.get_next_fire_time(None, utc("2027-03-26 12:00"))
    assert first.astimezone(UTC) == utc("2027-03-27 02:30")  # 03:30 CET
    second = job.trigger.get_next_fire_time(first, first + timedelta(seconds=1))
    assert second.astimezone(UTC) == utc("2027-03-28 01:30")  # 03:30 CEST, the night clocks go forward
    # what the job does: a purge at the injected time
    await kz.db.run(lambda conn: _outbox(conn, clock.now, timedelta(days=31), "delivered"))
    await reminders.fire_purge()
    assert [(r.kind, r.count, r.ran_at) for r in await _records(kz.db)] == [
        ("delivery", 1, clock.now),
        ("inbox", 0, clock.now),
    ]


async def test_the_real_scheduler_fires_the_purge(phased: Kiezstimme, clock: Clock) -> None:
    kz = phased
    await kz.db.run(lambda conn: _outbox(conn, clock.now, timedelta(days=31), "delivered"))
    reminders = ReminderClock(kz)
    reminders.start()
    try:
        reminders.scheduler.modify_job(PURGE_JOB, next_run_time=datetime.now(UTC) + timedelta(milliseconds=200))
        for _ in range(50):
            await asyncio.sleep(0.1)
            if await _records(kz.db):
                break
        assert [(r.kind, r.count, r.ran_at) for r in await _records(kz.db)][0] == ("delivery", 1, clock.now)
        assert reminders.scheduler.get_job(PURGE_JOB).next_run_time > datetime.now(UTC)  # and again tomorrow
    finally:
        reminders.stop()


# --- the command -----------------------------------------------------------------------------------


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def env(database_url: str, tmp_path: Path, db: object) -> dict[str, str]:  # db: migrated / truncated
    return {"DATABASE_URL": database_url, "MEDIA_DIR": str(tmp_path / "media"), "LOG_LEVEL": "WARNING"}


def _line(output: str, kind: str) -> list[str]:
    return next(line.split() for line in output.splitlines() if line.split()[:1] == [kind])


async def test_privacy_purge_command_dry_run_then_for_real(db: Database, env: dict[str, str]) -> None:
    now = datetime.now(UTC)
    await db.run(
        lambda conn: [
            _outbox(conn, now, timedelta(days=40), "delivered"),
            _outbox(conn, now, timedelta(days=35), "failed"),
            _outbox(conn, now, timedelta(days=2), "delivered"),
            _inbox(conn, now, timedelta(days=10), "failed", {"text": "x"}, "+4915790001234"),
        ]
    )
    before = await _rows(db, OutboundMessage)
    dry = await asyncio.to_thread(run, ["privacy", "purge", "--dry-run"], env)
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout
    cutoff = (now - 30 * DAY).astimezone(BERLIN)
    assert _line(dry.stdout, "delivery")[1:4] == ["2", "older", "than"]
    assert _line(dry.stdout, "delivery")[4] in {f"{cutoff:%Y-%m-%d}", f"{cutoff + timedelta(minutes=1):%Y-%m-%d}"}
    assert _line(dry.stdout, "inbox")[1] == "1"
    # the shipped test flows end in 2099: contact data is kept until 90 days after that
    assert _line(dry.stdout, "identities")[1:4] == ["-", "not", "before"]
    assert _line(dry.stdout, "identities")[4] == "2100-04-01"  # 31 Dec 2099 23:59 CET + 90 days, in CEST
    assert await _rows(db, OutboundMessage) == before and await _records(db) == []

    real = await asyncio.to_thread(run, ["privacy", "purge"], env)
    assert real.returncode == 0, real.stderr
    assert _line(real.stdout, "delivery")[1] == "2" and _line(real.stdout, "inbox")[1] == "1"
    assert "+4915790001234" not in real.stdout + real.stderr
    assert sorted(r.text for r in (await _rows(db, OutboundMessage)).values()) == ["", "", "Ihre Idee: Bäume"]
    assert [(r.kind, r.count) for r in await _records(db)] == [("delivery", 2), ("inbox", 1)]


def test_privacy_commands_are_registered_and_bad_periods_stop_with_one_line(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    helped = run(["privacy", "--help"], env)
    assert helped.returncode == 0 and "purge" in helped.stdout and "rotate-key" in helped.stdout
    wrong = run(["privacy", "purge", "--dry-run"], env | {"RETENTION_CONTACT_DAYS_AFTER_LAST_PHASE": "-5"})
    assert wrong.returncode == 2
    assert wrong.stderr.strip().count("\n") == 0 and "RETENTION_CONTACT_DAYS_AFTER_LAST_PHASE" in wrong.stderr


def test_rotate_key_dispatches_to_the_key_module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import types

    from bot.cli import _privacy, parser

    calls: list[tuple[object, object]] = []

    async def rotate_key(settings: object, new_key: str | None) -> int:
        calls.append((settings, new_key))
        return 3

    fake = types.ModuleType("bot.cli.privacy_keys")
    fake.rotate_key = rotate_key  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bot.cli.privacy_keys", fake)
    settings = load_settings({"DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert _privacy(settings, parser().parse_args(["privacy", "rotate-key", "--new-key", "k2"])) == 3
    assert _privacy(settings, parser().parse_args(["privacy", "rotate-key"])) == 3
    assert calls == [(settings, "k2"), (settings, None)]
