"""Bulk enqueue: per-language texts, audiences, idempotency, SMS segments."""

from __future__ import annotations

from sqlalchemy import func, select, update

from bot.delivery.outbox import Audience, enqueue_bulk
from bot.storage.db import Database
from bot.storage.models import Idea, OutboundMessage, Resident
from bot.storage.seed import seed_residents
from tests.conftest import Clock

TEXTS = {
    "de": "Die Feedback-Phase beginnt heute – machen Sie mit!",
    "en": "The feedback phase starts today.",
    "ar": "تبدأ مرحلة التعليقات اليوم.",
}
CHANNELS = ("telegram", "sms", "whatsapp", "webchat")


async def _count(db: Database, *where) -> int:  # type: ignore[no-untyped-def]
    async with db.read() as conn:
        return (await conn.execute(select(func.count()).select_from(OutboundMessage).where(*where))).scalar_one()


async def test_each_resident_gets_their_language_once(db: Database, clock: Clock) -> None:
    await seed_residents(db, 120, languages=("de", "en", "ar", "tr"), channels=("telegram", "sms", "whatsapp"))
    result = await enqueue_bulk(db, key="phase-2", texts=TEXTS, audience=Audience(), channels=CHANNELS, now=clock.now)
    assert result.total == 90 and result.without_text == {"tr": 30}
    assert result.enqueued[("telegram", "de")] == 10 and result.enqueued[("sms", "ar")] == 10
    again = await enqueue_bulk(db, key="phase-2", texts=TEXTS, audience=Audience(), channels=CHANNELS, now=clock.now)
    assert again.total == 0  # the same key enqueues nothing twice
    assert await _count(db) == 90
    async with db.read() as conn:
        rows = (
            await conn.execute(
                select(
                    OutboundMessage.channel,
                    OutboundMessage.language,
                    OutboundMessage.text,
                    OutboundMessage.segments,
                    OutboundMessage.priority,
                )
            )
        ).all()
    assert {r.priority for r in rows} == {1}
    sms_de = next(r for r in rows if r.channel == "sms" and r.language == "de")
    assert sms_de.text == "Die Feedback-Phase beginnt heute - machen Sie mit!" and sms_de.segments == 1  # GSM-7
    sms_ar = next(r for r in rows if r.channel == "sms" and r.language == "ar")
    assert sms_ar.segments == 1 and sms_ar.text == TEXTS["ar"]
    assert {r.text for r in rows if r.channel == "telegram" and r.language == "de"} == {TEXTS["de"]}


async def test_fallback_and_filters(db: Database, clock: Clock) -> None:
    ids = await seed_residents(db, 40, languages=("de", "tr"), channels=("telegram", "sms"))
    result = await enqueue_bulk(
        db,
        key="k1",
        texts={"de": "Hallo"},
        fallback="de",
        audience=Audience(languages=("tr",)),
        channels=CHANNELS,
        now=clock.now,
    )
    assert result.total == 20 and result.without_text == {}
    async with db.read() as conn:
        assert set((await conn.execute(select(OutboundMessage.language))).scalars()) == {"de"}
    result = await enqueue_bulk(
        db,
        key="k2",
        texts={"de": "x", "tr": "y"},
        audience=Audience(channels=("sms",)),
        channels=CHANNELS,
        now=clock.now,
    )
    assert set(c for c, _ in result.enqueued) == {"sms"} and result.total == 20
    # who stopped, cannot be reached or did not opt in gets nothing
    async with db.transaction() as conn:
        await conn.execute(update(Resident).where(Resident.id == ids[0]).values(stopped_at=clock.now))
        await conn.execute(update(Resident).where(Resident.id == ids[1]).values(unreachable_at=clock.now))
        await conn.execute(update(Resident).where(Resident.id == ids[2]).values(updates_opt_in=False))
    result = await enqueue_bulk(
        db, key="k3", texts={"de": "x", "tr": "y"}, audience=Audience(), channels=CHANNELS, now=clock.now
    )
    assert result.total == 37


async def test_audience_by_district_of_ideas(db: Database, clock: Clock) -> None:
    ids = await seed_residents(db, 10)
    async with db.transaction() as conn:
        for i, rid in enumerate(ids[:4]):
            await conn.execute(
                Idea.__table__.insert().values(
                    reference=f"AAA-{i:03d}",
                    resident_id=rid,
                    text="t" * 12,
                    topic="mobility",
                    district="pankow" if i < 3 else "mitte",
                    language="de",
                    channel="telegram",
                    media=[],
                    status="new",
                    created_at=clock.now,
                )
            )
    result = await enqueue_bulk(
        db, key="k", texts={"de": "x"}, audience=Audience(districts=("pankow",)), channels=CHANNELS, now=clock.now
    )
    assert result.total == 3
