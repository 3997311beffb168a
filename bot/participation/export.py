"""Exports for organisers: pseudonymised, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import json
from typing import Any, TextIO

from bot.config import Settings
from bot.storage.contributions import ContributionRepository
from bot.storage.db import Database

IDEA_FIELDS = (
    "reference",
    "text",
    "topic",
    "district",
    "language",
    "channel",
    "created_at",
    "status",
    "media",
    "resident",
)
FEEDBACK_FIELDS = (
    "statement",
    "rating",
    "comment",
    "media",
    "language",
    "channel",
    "created_at",
    "updated_at",
    "resident",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: str) -> str:
    """Neutralise cells a spreadsheet would run as a formula (CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


async def idea_records(db: Database, settings: Settings) -> list[dict[str, Any]]:
    zone = settings.zone
    base = settings.base_url
    rows = await ContributionRepository(db).idea_records()
    return [
        {
            "reference": r.reference,
            "text": r.text,
            "topic": r.topic,
            "district": r.district,
            "language": r.language,
            "channel": r.channel,
            "created_at": r.created_at.astimezone(zone).isoformat(),
            "status": r.status,
            "media": [f"{base}/admin/media/{r.reference}/{i}" for i, _ in enumerate(r.media or [])],
            "resident": r.pseudonym,  # None: the resident was erased and the idea kept as anonymous text
        }
        for r in rows
    ]


async def feedback_records(db: Database, settings: Settings) -> list[dict[str, Any]]:
    zone = settings.zone
    base = settings.base_url
    rows = await ContributionRepository(db).feedback_records()
    return [
        {
            "statement": r.statement,
            "rating": r.rating,
            "comment": r.comment,
            "media": [f"{base}/admin/media/feedback-{r.id}/{i}" for i, _ in enumerate(r.media or [])],
            "language": r.language,
            "channel": r.channel,
            "created_at": r.created_at.astimezone(zone).isoformat(),  # the first rating
            "updated_at": r.updated_at.astimezone(zone).isoformat(),  # the current one (or its comment)
            "resident": r.pseudonym,
        }
        for r in rows
    ]


def write_records(records: list[dict[str, Any]], fields: tuple[str, ...], fmt: str, out: TextIO) -> int:
    if fmt == "json":
        json.dump(records, out, ensure_ascii=False, indent=2)
        out.write("\n")
    else:
        out.write("\ufeff")  # UTF-8 BOM so Excel reads umlauts and Arabic correctly
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\r\n")
        writer.writeheader()
        for record in records:
            row = dict(record)
            row["media"] = " ".join(record["media"])
            writer.writerow(
                {k: spreadsheet_safe(v) if isinstance(v, str) else ("" if v is None else v) for k, v in row.items()}
            )
    return len(records)


async def export_ideas(db: Database, settings: Settings, fmt: str, out: TextIO) -> int:
    return write_records(await idea_records(db, settings), IDEA_FIELDS, fmt, out)


async def export_feedback(db: Database, settings: Settings, fmt: str, out: TextIO) -> int:
    return write_records(await feedback_records(db, settings), FEEDBACK_FIELDS, fmt, out)
