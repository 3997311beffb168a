"""Bulk sending inside the service (broadcasts, reminders): enqueue one message
to a set of residents, each in their own language, in a few INSERT … SELECT
statements — one per language, channel and SMS part — whatever the number of
recipients. An idempotency key makes enqueuing twice send once. The SQL lives
in :mod:`bot.storage.outbox`."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from bot.storage.audience import Audience
from bot.storage.db import Database
from bot.storage.outbox import BULK, BulkResult, OutboxRepository
from channels.registry import capabilities

__all__ = ["BULK", "Audience", "BulkResult", "channel_parts", "enqueue_bulk"]


def channel_parts(channel: str, text: str) -> list[tuple[str, int | None]]:
    """The text as the channel sends it (its capabilities split it and count units, e.g. SMS segments)."""
    return capabilities(channel).fit(text)


async def enqueue_bulk(
    db: Database,
    *,
    key: str,
    texts: dict[str, str],
    audience: Audience,
    channels: Iterable[str],
    now: datetime,
    fallback: str | None = None,
    expires_at: datetime | None = None,
    directions: dict[str, str] | None = None,
) -> BulkResult:
    """Enqueue ``texts`` (language -> text) to the audience; safe to call twice with one key."""
    return await OutboxRepository(db).enqueue_bulk(
        key=key,
        texts=texts,
        audience=audience,
        channels=tuple(channels),
        parts=channel_parts,
        now=now,
        fallback=fallback,
        expires_at=expires_at,
        directions=directions,
    )
