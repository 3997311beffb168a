"""Create many consenting residents quickly (benchmarks, load and fault tests)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import insert, select

from bot.storage.db import Database
from bot.storage.models import ChannelIdentity, Resident


async def seed_residents(
    db: Database,
    count: int,
    *,
    languages: Sequence[str] = ("de",),
    channels: Sequence[str] = ("telegram",),
    opted_in: bool = True,
    start: int = 0,
    now: datetime | None = None,
    chunk: int = 5000,
) -> list[int]:
    """``count`` residents who consented; resident i speaks languages[i % n] and
    is reached on channels[i % m] at address str(1_000_000 + start + i)."""
    now = now or datetime.now(UTC)
    ids: list[int] = []
    for offset in range(0, count, chunk):
        rows = range(start + offset, start + min(count, offset + chunk))
        async with db.transaction() as conn:
            await conn.execute(
                insert(Resident),
                [
                    {
                        "pseudonym": f"r-seed{i:08d}",
                        "language": languages[i % len(languages)],
                        "consent_version": "seed",
                        "consented_at": now,
                        "updates_opt_in": opted_in,
                        "created_at": now,
                        "last_inbound_at": now,
                    }
                    for i in rows
                ],
            )
            found = (
                await conn.execute(
                    select(Resident.id, Resident.pseudonym).where(
                        Resident.pseudonym.in_([f"r-seed{i:08d}" for i in rows])
                    )
                )
            ).all()
            by_name = {r.pseudonym: r.id for r in found}
            await conn.execute(
                insert(ChannelIdentity),
                [
                    {
                        "resident_id": by_name[f"r-seed{i:08d}"],
                        "channel": channels[i % len(channels)],
                        "address": db.keys.index(channels[i % len(channels)], str(1_000_000 + i)),
                        "address_enc": db.keys.seal(channels[i % len(channels)], str(1_000_000 + i)),
                        "created_at": now,
                        "last_inbound_at": now,
                    }
                    for i in rows
                ],
            )
            ids.extend(by_name[f"r-seed{i:08d}"] for i in rows)
    return ids
