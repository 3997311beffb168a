"""Broadcasts (``python -m bot broadcast`` and the dashboard's broadcasts pages): an
announcement to residents who opted in, each in their language — with a dry run that shows
who would get what and what it costs, how each channel renders it, a record in the
``broadcasts`` table, sending now or at a time (:func:`queue_due`, run by the scheduler),
cancelling, and progress that follows delivery."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.app import Kiezstimme
from bot.delivery.outbox import Audience, channel_parts, enqueue_bulk
from bot.storage.audience import AudienceRepository
from bot.storage.broadcasts import CANCELLED, BroadcastRecord, BroadcastRepository
from bot.storage.outbox import OutboxRepository
from channels.registry import capabilities

FINAL = ("sent", "delivered", "read", "failed", "undelivered", "skipped", "expired", "in web chat", CANCELLED)
RECHECK_CANCELLED = timedelta(hours=1)  # a retried message comes back within this long
# how the progress of a broadcast is told: the outbox's statuses in four groups (and two more)
STAGES = {
    "pending": "queued",
    "sending": "queued",
    "queued": "sent",  # the provider's own queue: it has the message
    "accepted": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "failed": "failed",
    "undelivered": "failed",
    "skipped": "failed",
    "expired": "failed",
    "in web chat": "in web chat",
    CANCELLED: "cancelled",
}


@dataclass
class DryRun:
    rows: list[dict[str, Any]]  # per channel and language: residents, segments, cost, outside window
    without_text: dict[str, int]
    total: int


def _row(
    kz: Kiezstimme,
    channel: str,
    lang: str,
    text_lang: str,
    n: int,
    text: str,
    outside: dict[tuple[str, str | None], int],
    price: float,
) -> dict[str, Any]:
    caps = capabilities(channel)
    row: dict[str, Any] = {"channel": channel, "language": lang, "text_language": text_lang, "residents": n}
    if caps.units is not None:  # billed per unit (SMS segments)
        units = sum(u or 0 for _, u in channel_parts(channel, text))
        row.update(segments=units, cost=round(units * n * price, 2))
    if caps.reply_window is not None:
        templates = caps.templates(kz.flows) if caps.templates else {}
        row.update(outside_window=outside.get((channel, lang), 0), template=lang in templates)
    return row


async def dry_run(
    kz: Kiezstimme, texts: dict[str, str], fallback: str | None, audience: Audience, price_per_segment: float
) -> DryRun:
    channels = kz.channels.bulk_targets()
    now = kz.service.clock()
    windows = {c: now - w for c in channels if (w := capabilities(c).reply_window) is not None}
    counts, outside = await AudienceRepository(kz.db).counts(audience, channels, windows)
    rows: list[dict[str, Any]] = []
    without: dict[str, int] = {}
    total = 0
    for channel, lang, n in sorted(counts, key=lambda r: (r[0], r[1] or "")):
        text_lang = lang if lang in texts else fallback if fallback in texts else None
        if text_lang is None:
            without[lang or "?"] = without.get(lang or "?", 0) + n
            continue
        rows.append(_row(kz, channel, lang or "?", text_lang, n, texts[text_lang], outside, price_per_segment))
        total += n
    return DryRun(rows, without, total)


def audience_fields(audience: Audience) -> dict[str, Any]:
    """The audience as stored with a broadcast (and hashed into its key): the filters only."""
    fields = {name: list(getattr(audience, name)) for name in ("channels", "languages", "districts", "topics")}
    if audience.sources:  # absent when unused, so keys derived before the filter existed stay the same
        fields["sources"] = list(audience.sources)
    return fields


def audience_from(fields: dict[str, Any]) -> Audience:
    return Audience(
        channels=tuple(fields.get("channels", ())),
        languages=tuple(fields.get("languages", ())),
        districts=tuple(fields.get("districts", ())),
        topics=tuple(fields.get("topics", ())),
        sources=tuple(fields.get("sources", ())),
    )


def broadcast_key(texts: dict[str, str], fallback: str | None, audience: Audience, salt: str = "") -> str:
    """The idempotency key of a broadcast: the same texts, fallback and audience (and ``salt``:
    the dashboard's draft and send time) give the same key, so queuing twice sends once."""
    shown = dict(audience.__dict__)
    if not audience.sources:  # as before the filter existed: old keys stay valid
        shown.pop("sources")
    material: list[Any] = [texts, fallback, shown]
    if salt:
        material.append(salt)
    digest = hashlib.sha256(json.dumps(material, sort_keys=True, default=list).encode()).hexdigest()
    return f"broadcast:{digest[:16]}"


async def send(kz: Kiezstimme, key: str, texts: dict[str, str], fallback: str | None, audience: Audience) -> int:
    directions = {tr.language.code: tr.language.direction for tr in kz.catalogs}
    result = await enqueue_bulk(
        kz.db,
        key=key,
        texts=texts,
        fallback=fallback,
        audience=audience,
        channels=kz.channels.bulk_targets(),
        now=kz.service.clock(),
        directions=directions,
    )
    kz.sender.wake()
    return result.total


async def progress(kz: Kiezstimme, key: str) -> dict[str, int]:
    """Messages of one broadcast by status; those for a pull channel (the web chat)
    wait for the resident to open the page and count as "in web chat"."""
    counts: dict[str, int] = {}
    for channel, status, n in await OutboxRepository(kz.db).progress(key):
        if status == "pending" and capabilities(channel).delivery == "pull":
            status = "in web chat"
        counts[status] = counts.get(status, 0) + n
    return counts


async def follow(kz: Kiezstimme, key: str, console: Any, timeout: timedelta | None = None) -> dict[str, int]:
    """A progress bar until every message is sent, delivered or failed."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    counts = await progress(kz, key)
    total = sum(counts.values())
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout.total_seconds() if timeout is not None else None
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("sending", total=total)
        while True:
            counts = await progress(kz, key)
            done = sum(n for status, n in counts.items() if status in FINAL)
            sent = sum(counts.get(s, 0) for s in ("sent", "delivered", "read"))
            failed = sum(counts.get(s, 0) for s in ("failed", "undelivered", "skipped", "expired"))
            bar.update(task, completed=done, description=f"sent {sent} · failed {failed} · waiting {total - done}")
            if done >= total or (deadline is not None and loop.time() >= deadline):
                return counts
            await asyncio.sleep(0.5)


# --- the broadcasts table: record, queue now or when due, cancel --------------------------------


async def record(
    kz: Kiezstimme,
    *,
    key: str,
    texts: dict[str, str],
    fallback: str | None,
    audience: Audience,
    created_by: str,
    send_at: datetime | None = None,
) -> tuple[int, bool]:
    """Record a broadcast (audited as ``created_by``); its id and whether it is new (the same
    key twice — a double submit, the CLI run again — is one broadcast)."""
    detail = {"languages": sorted(texts), "fallback": fallback, "audience": audience_fields(audience)}
    if send_at is not None:
        detail["send_at"] = send_at.isoformat()
    return await BroadcastRepository(kz.db).create(
        key=key,
        texts=texts,
        fallback=fallback,
        audience=audience_fields(audience),
        created_by=created_by,
        now=kz.service.clock(),
        send_at=send_at,
        audit_detail=detail,
    )


async def queue(kz: Kiezstimme, broadcast: BroadcastRecord) -> int:
    """Put a recorded broadcast's messages in the outbox (safe twice: its key) and mark it
    queued; one cancelled meanwhile has whatever was queued stopped again."""
    repo = BroadcastRepository(kz.db)
    audience = audience_from(broadcast.audience)
    enqueued = await send(kz, broadcast.key, broadcast.texts, broadcast.fallback, audience)
    now = kz.service.clock()
    total = sum((await progress(kz, broadcast.key)).values())
    if not await repo.mark_queued(broadcast.id, total, now):
        await repo.stop_pending(broadcast.key, now)
    return enqueued


async def queue_due(kz: Kiezstimme) -> list[int]:
    """Queue every recorded broadcast whose time has come (the scheduler runs this often;
    running it twice, or in two processes, queues nothing twice). And stop again what of a
    recently cancelled broadcast waits once more: a message that was in a sender's hands when
    its broadcast was cancelled, and failed for a reason worth retrying, went back to the queue."""
    repo = BroadcastRepository(kz.db)
    now = kz.service.clock()
    for key in await repo.cancelled_since(now - RECHECK_CANCELLED):
        await repo.stop_pending(key, now)
    done = []
    for broadcast in await repo.due(now):
        await queue(kz, broadcast)
        done.append(broadcast.id)
    return done


async def cancel(kz: Kiezstimme, broadcast_id: int, actor: str) -> int | None:
    """Stop what of a broadcast has not gone out; the number of messages stopped (None: no such broadcast)."""
    return await BroadcastRepository(kz.db).cancel(broadcast_id, actor, kz.service.clock())


# --- what the dashboard shows ------------------------------------------------------------------


@dataclass
class Progress:
    """A broadcast's messages by stage (queued, sent, delivered, failed, in web chat, cancelled),
    in all and per channel."""

    stages: dict[str, int] = field(default_factory=dict)
    channels: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.stages.values())

    @property
    def finished(self) -> bool:
        """Nothing waits for a sender (web chat messages wait for their residents instead)."""
        return self.stages.get("queued", 0) == 0

    @property
    def stoppable(self) -> int:
        """Messages that cancelling would still stop."""
        return self.stages.get("queued", 0) + self.stages.get("in web chat", 0)


async def stages(kz: Kiezstimme, key: str) -> Progress:
    result = Progress()
    for channel, status, n in await OutboxRepository(kz.db).progress(key):
        if status == "pending" and capabilities(channel).delivery == "pull":
            status = "in web chat"
        stage = STAGES.get(status, "sent")
        result.stages[stage] = result.stages.get(stage, 0) + n
        per = result.channels.setdefault(channel, {})
        per[stage] = per.get(stage, 0) + n
    return result


def _encoding(units: Any, part: str) -> str:
    """GSM-7 or UCS-2: the registry counts units per part but does not name the alphabet, so
    each character is tried alone: 71 of a GSM-7 character fit one SMS (160), 71 of any
    other do not (70)."""
    return "UCS-2" if any(units(ch * 71) > 1 for ch in set(part)) else "GSM-7"


def rendering(channel: str, text: str) -> list[dict[str, Any]]:
    """The text as ``channel`` sends it: its parts, each with units (SMS segments) and the
    alphabet where the channel is billed by units."""
    caps = capabilities(channel)
    parts = []
    for number, (part, units) in enumerate(channel_parts(channel, text), start=1):
        shown: dict[str, Any] = {"number": number, "text": part}
        if caps.units is not None:
            shown.update(segments=units, encoding=_encoding(caps.units, part) if caps.encoding == "gsm7" else "")
        parts.append(shown)
    return parts
