"""Phases, reminders, announcements, broadcasts and status notices — with an
injected clock (no sleeping), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from sqlalchemy import func, select, update

from bot.app import Kiezstimme, build
from bot.config import SHIPPED_FLOWS_DIR, load_settings
from bot.conversation.phases import QuietHours, outside_quiet_hours, parse_local, reminder_points
from bot.delivery.outbox import Audience
from bot.participation.broadcasts import dry_run
from bot.participation.reminders import send_announcement, send_reminder, set_idea_status
from bot.participation.scheduler import ReminderClock
from bot.storage.db import Database
from bot.storage.models import OutboundMessage, Resident
from bot.storage.seed import seed_residents
from bot.values import Inbound
from tests.conftest import TEST_DATA_KEY, Clock
from tests.helpers import Talk

BERLIN = ZoneInfo("Europe/Berlin")
UTC = UTC
ROOT = Path(__file__).resolve().parent.parent


def process_with(
    tmp_path: Path,
    starts: str,
    ends: str,
    reminders: str = "[7d, 2d, 3h]",
    quiet: str = '{start: "21:00", end: "08:00"}',
) -> Path:
    flows = tmp_path / "flows"
    shutil.copytree(SHIPPED_FLOWS_DIR, flows)
    text = (flows / "process.yaml").read_text(encoding="utf-8")
    head = text.split("phases:")[0]
    (flows / "process.yaml").write_text(
        head
        + f"""phases:
  - id: collection
    name: "Collecting ideas"
    starts: {starts}
    ends: {ends}
    dialogues: [idea]
    reminders: {reminders}
    announcement: "Kiezstimme is open: share your idea for the city's strategy until 2 January. Send MENU to start."
  - id: feedback
    name: "Feedback on the draft strategy"
    starts: 2030-01-01 08:00
    ends: 2030-02-01 23:59
    dialogues: [feedback]
quiet_hours: {quiet}
grace_minutes: 30
""",
        encoding="utf-8",
    )
    return flows


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- reminder times: DST, quiet hours, deadlines ------------------------------------------------


def test_reminders_follow_local_time_across_the_march_dst_change(tmp_path: Path) -> None:
    from bot.conversation.flow_files import load_flows

    flows = load_flows(process_with(tmp_path, "2027-03-01 00:00", "2027-03-30 12:00", "[7d, 2d, 3h]"), BERLIN)
    points = {p.offset: p for p in reminder_points(flows.process, BERLIN)}
    # 30 March 12:00 CEST (UTC+2); 7 days before is 23 March 12:00 CET (UTC+1): 11:00 UTC
    assert points["7d"].due == utc("2027-03-23 11:00")
    assert points["2d"].due == utc("2027-03-28 10:00")  # 28 March 12:00 CEST, the day clocks went forward
    assert points["3h"].due == utc("2027-03-30 07:00")
    assert all(p.send_at == p.due for p in points.values())


def test_reminders_follow_local_time_across_the_october_dst_change(tmp_path: Path) -> None:
    from bot.conversation.flow_files import load_flows

    flows = load_flows(process_with(tmp_path, "2027-10-01 00:00", "2027-11-02 18:00", "[7d, 2d]"), BERLIN)
    points = {p.offset: p for p in reminder_points(flows.process, BERLIN)}
    assert points["7d"].due == utc("2027-10-26 16:00")  # 26 October 18:00 is still summer time: UTC+2
    assert points["2d"].due == utc("2027-10-31 17:00")  # 31 October 18:00, after clocks went back: UTC+1
    flows = load_flows(process_with(tmp_path / "b", "2027-10-01 00:00", "2027-10-31 18:00", "[7d]"), BERLIN)
    assert reminder_points(flows.process, BERLIN)[0].due == utc("2027-10-24 16:00")  # still CEST: UTC+2


def test_quiet_hours_postpone_to_the_morning_unless_past_the_deadline() -> None:
    quiet = QuietHours()
    late = parse_local("2026-12-31 23:59", BERLIN)
    assert outside_quiet_hours(late, parse_local("2027-01-02 23:59", BERLIN), quiet, BERLIN) == parse_local(
        "2027-01-01 08:00", BERLIN
    )
    early = parse_local("2027-01-05 05:30", BERLIN)
    assert outside_quiet_hours(early, parse_local("2027-01-05 08:30", BERLIN), quiet, BERLIN) == parse_local(
        "2027-01-05 08:00", BERLIN
    )
    # postponing to 08:00 would miss a 07:00 deadline: it goes out at 04:00 instead
    night = parse_local("2027-01-05 04:00", BERLIN)
    assert outside_quiet_hours(night, parse_local("2027-01-05 07:00", BERLIN), quiet, BERLIN) == night
    day = parse_local("2027-01-05 14:00", BERLIN)
    assert outside_quiet_hours(day, None, quiet, BERLIN) == day


def test_shipped_process_is_valid_and_its_reminders_respect_quiet_hours() -> None:
    from bot.conversation.flow_files import load_flows

    flows = load_flows(SHIPPED_FLOWS_DIR, BERLIN)
    points = reminder_points(flows.process, BERLIN)
    assert [p.id for p in points][:3] == ["reminder:collection:7d", "reminder:collection:2d", "reminder:collection:3h"]
    for p in points:
        local = p.send_at.astimezone(BERLIN)
        assert not QuietHours().contains(local) or p.send_at == p.due
        assert p.send_at < p.deadline


def test_broken_phases_are_reported(tmp_path: Path) -> None:
    from bot.conversation.flow_files import load_flows
    from bot.conversation.flows import FlowError

    flows = process_with(tmp_path, "2027-01-05 00:00", "2027-01-01 00:00", "[7d, soon]")
    with pytest.raises(FlowError) as info:
        load_flows(flows, BERLIN)
    text = "\n".join(info.value.problems)
    assert "ends before it starts" in text and "'soon' is not like 7d" in text


# --- dialogues follow the phase -------------------------------------------------------------------


def talk_at(tmp_path: Path, now: datetime, starts: str = "2026-11-01 00:00", ends: str = "2027-01-02 23:59") -> Talk:
    from bot.config import SHIPPED_I18N_DIR
    from bot.conversation.engine import Engine
    from bot.conversation.flow_files import load_flows
    from bot.conversation.i18n import Catalogs

    flows = load_flows(process_with(tmp_path, starts, ends), BERLIN)
    return Talk(Engine(flows, Catalogs.load(flows, SHIPPED_I18N_DIR)), now=now)


def test_idea_dialogue_is_closed_after_its_phase(tmp_path: Path) -> None:
    talk = talk_at(tmp_path, utc("2027-01-10 10:00"))
    for line in ["👋", "2", "1"]:
        talk.send(line)
    reply = talk.say("1")  # the menu has no idea option any more: 1 is now "About"
    assert "Share an idea" not in reply
    talk.send("MENU")
    assert "Share an idea" not in talk.say("?")


def test_upcoming_dialogue_says_when_it_opens(tmp_path: Path) -> None:
    talk = talk_at(tmp_path, utc("2026-12-01 10:00"))
    for line in ["👋", "2", "1"]:
        talk.send(line)
    assert "Give feedback" not in talk.say("MENU")  # the feedback phase is not open yet
    for line in ["1", "1", "More night buses to the outer districts", "1", "1"]:
        talk.send(line)
    assert "Your reference is" in talk.say("1")
    talk.send("skip")  # who speaks: voluntary (tests/test_who_speaks.py)
    reply = talk.say("skip")
    assert "Feedback on the draft strategy opens on January 1, 2030." in reply  # with a Babel date
    assert talk.node is None


def test_dialogue_not_yet_open_in_german_dates(tmp_path: Path) -> None:
    talk = talk_at(tmp_path, utc("2026-12-01 10:00"))
    for line in ["👋", "1", "1", "1", "1", "Mehr Bäume und Schatten am Kanal", "1", "1"]:
        talk.send(line)
    talk.send("1")
    talk.send("nein")  # who speaks: voluntary (tests/test_who_speaks.py)
    assert "beginnt am 1. Januar 2030" in talk.say("nein")


def test_resident_mid_idea_may_finish_within_the_grace(tmp_path: Path) -> None:
    talk = talk_at(tmp_path, utc("2027-01-02 22:40"))  # 23:40 Berlin, 19 minutes before the end
    for line in ["👋", "2", "1", "1", "1", "More night buses to the outer districts", "1", "1"]:
        talk.send(line)
    assert talk.node == "idea.summary"
    talk.wait(minutes=35)  # 00:15: closed, but within the 30 minutes' grace of 23:59
    assert "Your reference is" in talk.say("1")
    talk2 = talk_at(tmp_path / "late", utc("2027-01-02 22:40"))
    for line in ["👋", "2", "1", "1", "1", "More night buses to the outer districts", "1", "1"]:
        talk2.send(line)
    talk2.wait(hours=2)
    reply = talk2.say("1")
    assert "closed on January 2, 2027" in reply and "Your reference" not in reply


# --- reminders through the real service and database -----------------------------------------------


@pytest_asyncio.fixture
async def phased(db: Database, database_url: str, tmp_path: Path, clock: Clock) -> AsyncIterator[Kiezstimme]:
    flows = process_with(tmp_path, "2026-11-01 00:00", "2027-01-02 23:59")
    settings = load_settings(
        {
            "DATABASE_URL": database_url,
            "DATA_KEY": TEST_DATA_KEY,
            "FLOWS_DIR": str(flows),
            "MEDIA_DIR": str(tmp_path / "m"),
        }
    )
    kz = build(settings, clock=clock, db=db)
    yield kz
    await kz.sender.stop()


async def webchat(kz: Kiezstimme, client: str, *lines: str) -> list[str]:
    out = []
    for line in lines:
        inbound = Inbound(channel="webchat", address=client, provider_id=os.urandom(8).hex(), text=line)
        await kz.inbox.receive(inbound, wait=True)
        out.extend(m.text for m in await kz.service.take_pending("webchat", client))
    return out


ALMOST = ["👋", "1", "1", "1", "1", "Mehr Bäume und Schatten am Kanal", "1", "1"]  # at the summary, opted in


async def test_reminder_kinds_once_each_and_never_late(phased: Kiezstimme, clock: Clock) -> None:
    kz = phased
    await webchat(kz, "done-resident-1", *ALMOST, "1")  # submitted: no nag
    await webchat(kz, "half-resident-1", *ALMOST)  # unfinished: personal reminder
    await seed_residents(
        kz.db, 3, languages=("ar", "tr", "pl"), channels=("webchat",), now=clock.now
    )  # plain subscribers
    point = next(p for p in reminder_points(kz.flows.process, BERLIN) if p.offset == "2d")
    clock.now = point.send_at - timedelta(minutes=3)
    await webchat(kz, "busy-resident-1", *ALMOST)  # in the middle of the idea dialogue right now
    clock.now = point.send_at
    run = await send_reminder(kz, point, clock.now)
    assert (run.personal.total, run.general.total, run.skipped_done, run.deferred) == (1, 3, 1, 1)
    half = await kz.service.take_pending("webchat", "half-resident-1")
    assert len(half) == 1 and "noch 2 Tage" in half[0].text and "Antworten Sie einfach" in half[0].text
    arabic = await kz.service.take_pending("webchat", "1000000")
    assert arabic and arabic[0].direction == "rtl"
    # the resident continues where they stopped (after a month: asked to continue, then the summary again)
    assert "weitermachen" in (await webchat(kz, "half-resident-1", "Hallo"))[0]
    assert (await webchat(kz, "half-resident-1", "1"))[0].startswith("Ihre Idee: Mehr Bäume")
    assert any("Ihre Nummer ist" in t for t in await webchat(kz, "half-resident-1", "1"))
    # again (a restart, a second worker): nobody gets it twice; the busy one now gets theirs
    clock.advance(minutes=20)
    again = await send_reminder(kz, point, clock.now)
    assert again.enqueued == 1 and again.deferred == 0
    async with kz.db.read() as conn:
        keys = (
            (
                await conn.execute(
                    select(OutboundMessage.idempotency_key).where(OutboundMessage.idempotency_key.like("reminder:%"))
                )
            )
            .scalars()
            .all()
        )
        expires = set(
            (
                await conn.execute(
                    select(OutboundMessage.expires_at).where(OutboundMessage.idempotency_key.like("reminder:%"))
                )
            ).scalars()
        )
    assert len(keys) == len(set(keys)) == 5 and expires == {point.deadline}
    clock.now = point.deadline + timedelta(seconds=1)
    late = await send_reminder(kz, point, clock.now)
    assert late.late and late.enqueued == 0


async def test_hours_reminder_uses_plural_hours(phased: Kiezstimme, clock: Clock) -> None:
    kz = phased
    await seed_residents(kz.db, 2, languages=("ru", "en"), channels=("webchat",), now=clock.now)
    point = next(p for p in reminder_points(kz.flows.process, BERLIN) if p.offset == "3h")
    clock.now = point.send_at
    await send_reminder(kz, point, clock.now)
    ru = (await kz.service.take_pending("webchat", "1000000"))[0].text
    en = (await kz.service.take_pending("webchat", "1000001"))[0].text
    assert en.startswith("Only 3 hours left: Collecting ideas (until January 2, 2027)")
    assert "3" in ru and "2027" in ru and "Only" not in ru


async def test_announcement_once_to_subscribers(phased: Kiezstimme, clock: Clock) -> None:
    kz = phased
    ids = await seed_residents(kz.db, 10, languages=("de", "uk"), channels=("webchat",), now=clock.now)
    async with kz.db.transaction() as conn:
        await conn.execute(update(Resident).where(Resident.id == ids[0]).values(updates_opt_in=False))
    phase = kz.flows.process.phase("collection")
    assert (await send_announcement(kz, phase, clock.now)).total == 9
    assert (await send_announcement(kz, phase, clock.now)).total == 0


async def test_idea_status_notice_in_the_residents_language(phased: Kiezstimme, clock: Clock) -> None:
    kz = phased
    replies = await webchat(kz, "status-resident", *ALMOST, "1")
    reference = next(r for r in replies if "Ihre Nummer ist" in r).split("Ihre Nummer ist ")[1][:7]
    found, notices = await set_idea_status(kz, reference.lower(), "approved", clock.now)
    assert found and notices == 1
    notice = (await kz.service.take_pending("webchat", "status-resident"))[0].text
    # nothing publishes ideas in the shipped process (no publication_url): accepted, not "published"
    assert reference in notice and "veröffentlicht" not in notice
    found, notices = await set_idea_status(kz, reference, "hidden", clock.now)
    hidden = (await kz.service.take_pending("webchat", "status-resident"))[0].text
    assert reference in hidden and "115" in hidden  # a person to ask, not "send HELP"
    assert (await set_idea_status(kz, "ZZZ-ZZZ", "hidden", clock.now)) == (False, 0)


async def test_broadcast_dry_run_counts_segments_and_costs(phased: Kiezstimme, clock: Clock) -> None:
    kz = phased
    await seed_residents(kz.db, 12, languages=("de", "ar", "tr"), channels=("webchat",), now=clock.now)
    texts = {"de": "Die Feedback-Phase beginnt heute – machen Sie mit!", "ar": "تبدأ مرحلة التعليقات اليوم."}
    preview = await dry_run(kz, texts, None, Audience(), 0.08)
    assert preview.total == 8 and preview.without_text == {"tr": 4}
    with_fallback = await dry_run(kz, texts, "de", Audience(languages=("tr",)), 0.08)
    assert with_fallback.total == 4 and with_fallback.rows[0]["text_language"] == "de"


# --- the real scheduler ---------------------------------------------------------------------------------


async def test_scheduler_plans_stable_jobs_and_moves_them_with_the_data(
    phased: Kiezstimme, tmp_path: Path, clock: Clock
) -> None:
    clock_ = ReminderClock(phased, grace=timedelta(minutes=60))
    clock_.plan()
    jobs = {j.id: j for j in clock_.scheduler.get_jobs()}
    assert {"reminder:collection:7d", "reminder:collection:2d", "reminder:collection:3h", "announce:collection"} <= set(
        jobs
    )
    assert jobs["reminder:collection:2d"].trigger.run_date == utc(
        "2027-01-01 07:00"
    )  # 31 Dec 23:59 is quiet: 1 Jan 08:00 Berlin
    assert jobs["reminder:collection:3h"].misfire_grace_time == 3600
    # a new deadline in the data and a restart move the reminders; the ids stay
    flows = process_with(tmp_path / "moved", "2026-11-01 00:00", "2027-01-09 18:00")
    moved = build(
        load_settings(
            {"DATABASE_URL": phased.settings.database_url, "DATA_KEY": TEST_DATA_KEY, "FLOWS_DIR": str(flows)}
        ),
        clock=clock,
        db=phased.db,
    )
    clock2 = ReminderClock(moved)
    clock2.plan()
    assert clock2.scheduler.get_job("reminder:collection:2d").trigger.run_date == utc("2027-01-07 17:00")


async def test_scheduler_really_fires_a_due_job(phased: Kiezstimme, clock: Clock) -> None:
    """The real AsyncIOScheduler runs a reminder whose time has come."""
    await seed_residents(phased.db, 2, channels=("webchat",), now=clock.now)
    point = next(p for p in reminder_points(phased.flows.process, BERLIN) if p.offset == "7d")
    clock.now = point.send_at
    scheduler = ReminderClock(phased)
    scheduler.scheduler.start()
    try:
        scheduler._add(point.id, datetime.now(UTC) + timedelta(milliseconds=200), scheduler.fire_reminder, point.id)
        for _ in range(50):
            await asyncio.sleep(0.1)
            async with phased.db.read() as conn:
                if (await conn.execute(select(func.count()).select_from(OutboundMessage))).scalar_one() == 2:
                    break
        async with phased.db.read() as conn:
            assert (await conn.execute(select(func.count()).select_from(OutboundMessage))).scalar_one() == 2
    finally:
        scheduler.stop()


def test_phases_command_lists_states_and_next_reminders(tmp_path: Path) -> None:
    flows = process_with(tmp_path, "2026-11-01 00:00", "2099-01-02 23:59")
    env = {**os.environ, "FLOWS_DIR": str(flows), "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "COLUMNS": "200"}
    out = subprocess.run(
        [sys.executable, "-m", "bot", "phases"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "collection" in out.stdout and "open" in out.stdout and "upcoming" in out.stdout
    assert "reminder 7d before collection ends" in out.stdout


def test_broadcast_command_dry_run_and_send(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'b.db'}"

    async def seed() -> None:
        db = Database(db_url)
        await db.migrate()
        await seed_residents(db, 6, languages=("de", "ar", "tr"), channels=("webchat",))
        await db.dispose()

    asyncio.run(seed())
    env = {**os.environ, "DATABASE_URL": db_url, "COLUMNS": "200", "LOG_LEVEL": "WARNING"}
    args = [
        sys.executable,
        "-m",
        "bot",
        "broadcast",
        "--text",
        "de=Die Feedback-Phase beginnt heute.",
        "--text",
        "ar=تبدأ مرحلة التعليقات اليوم.",
    ]
    dry = subprocess.run([*args, "--dry-run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert "total: 4 message(s)" in dry.stdout and "2 resident(s) in tr" in dry.stdout
    sent = subprocess.run([*args, "--yes", "--no-wait"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert sent.returncode == 0, sent.stderr
    assert "4 message(s) queued" in sent.stdout
    again = subprocess.run([*args, "--yes", "--no-wait"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert "0 message(s) queued" in again.stdout  # the same broadcast twice sends once


async def test_broadcast_to_hundreds_through_the_fakes_within_the_limits(
    db: Database, database_url: str, tmp_path: Path, clock: Clock
) -> None:
    """A phase announcement to 300 residents on Telegram and SMS: everyone gets it
    once, in their language, and neither provider's limit is exceeded."""
    from bot.participation import broadcasts as bc
    from tests.fakes.telegram import FakeTelegram
    from tests.fakes.twilio import FakeTwilio

    os.environ.pop("TWILIO_REGION", None)
    async with FakeTelegram(token="1:x", rate_limit_per_s=40) as tg, FakeTwilio(rate_limit_per_s=40) as tw:
        flows = process_with(tmp_path, "2026-11-01 00:00", "2027-01-02 23:59")
        settings = load_settings(
            {
                "DATABASE_URL": database_url,
                "DATA_KEY": TEST_DATA_KEY,
                "FLOWS_DIR": str(flows),
                "PUBLIC_URL": "https://bot.example.org",
                "TELEGRAM_BOT_TOKEN": "1:x",
                "TELEGRAM_WEBHOOK_SECRET": "s",
                "TELEGRAM_API_BASE_URL": tg.root,
                "TWILIO_ACCOUNT_SID": tw.account_sid,
                "TWILIO_AUTH_TOKEN": tw.auth_token,
                "TWILIO_SMS_FROM": "+4930901820",
                "TWILIO_API_BASE_URL": tw.root,
                "TELEGRAM_RATE_PER_S": "40",
                "SMS_SEGMENTS_PER_S": "40",
            }
        )
        kz = build(settings, clock=lambda: datetime.now(UTC), db=db)  # real time: the limits are real
        await seed_residents(db, 300, languages=("de", "ar", "uk"), channels=("telegram", "sms", "telegram"))
        phase = kz.flows.process.phase("collection")
        texts = {tr.language.code: tr.gettext(phase.announcement) for tr in kz.catalogs}
        preview = await bc.dry_run(kz, texts, None, Audience(), 0.08)
        sms_rows = [r for r in preview.rows if r["channel"] == "sms"]
        assert sum(r["residents"] for r in preview.rows) == 300 and all(r["segments"] >= 1 for r in sms_rows)
        assert await bc.send(kz, "announce-test", texts, None, Audience()) == 300
        kz.sender.start()
        try:
            counts = await asyncio.wait_for(bc.follow(kz, "announce-test", console=None), timeout=60)
        finally:
            await kz.sender.stop()
            await kz.channels.close()
        assert counts == {"sent": 300}
        assert tg.violations == 0 and tw.violations == 0
        assert len({m["chat_id"] for m in tg.sent_messages()}) == 200
        assert len({m["To"] for m in tw.messages}) == 100
        arabic = [m["text"] for m in tg.sent_messages() if m["chat_id"] % 3 == 1]  # resident i speaks languages[i % 3]
        assert arabic and all("Kiezstimme" in t for t in arabic)
