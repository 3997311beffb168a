"""``python -m bot broadcast``: an announcement to residents who opted in,
each in their language — with a dry run that shows who would get what and
what it costs, and a progress view that follows delivery."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.app import Kiezstimme
from bot.delivery.outbox import Audience, channel_parts, enqueue_bulk
from bot.storage.audience import AudienceRepository
from bot.storage.outbox import OutboxRepository
from channels.registry import capabilities

FINAL = ("sent", "delivered", "read", "failed", "undelivered", "skipped", "expired", "in web chat")


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


def broadcast_key(texts: dict[str, str], fallback: str | None, audience: Audience) -> str:
    digest = hashlib.sha256(
        json.dumps([texts, fallback, audience.__dict__], sort_keys=True, default=list).encode()
    ).hexdigest()
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
