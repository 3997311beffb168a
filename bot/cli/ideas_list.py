"""``python -m bot ideas list [--status S] [--q TEXT] [--limit N]``: the newest ideas as a table
for operators — reference, date, status, topic and district by label, language, channel and
the start of the text. No pseudonym, no address: nothing that points to a resident."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from bot.config import Settings

TEXT_CHARS = 60
STATUSES = ("new", "approved", "hidden", "spam")


async def newest_ideas(db: Any, status: str | None, q: str | None, limit: int) -> list[Any]:
    """Ideas newest first, with this status, whose reference is ``q`` or whose text contains it."""
    from sqlalchemy import func, or_, select

    from bot.storage.models import Idea

    query = select(
        Idea.reference, Idea.created_at, Idea.status, Idea.topic, Idea.district, Idea.language, Idea.channel, Idea.text
    )
    if status:
        query = query.where(Idea.status == status)
    if q and q.strip():
        words = q.strip()
        escaped = words.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(
            or_(
                Idea.reference == words.upper(),
                func.lower(Idea.text).like(f"%{escaped.lower()}%", escape="\\"),
            )
        )
    query = query.order_by(Idea.created_at.desc(), Idea.id.desc()).limit(max(1, limit))
    async with db.read() as conn:
        return list((await conn.execute(query)).all())


def shorten(text: str, chars: int = TEXT_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= chars else flat[: chars - 1] + "…"


async def ideas_list(
    settings: Settings, status: str | None, q: str | None, limit: int, out: TextIO = sys.stdout
) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from bot.participation.export import Labels
    from bot.storage.db import Database

    labels = Labels.load(settings)
    db = Database(settings.database_url, data_key=settings.data_key.get_secret_value() if settings.data_key else None)
    try:
        await db.migrate()
        rows = await newest_ideas(db, status, q, limit)
    finally:
        await db.dispose()
    zone = settings.zone
    title = f"Ideas, newest first ({len(rows)} shown" + (f", status {status}" if status else "") + ")"
    table = Table(title=title)
    for column in ("reference", "created", "status", "topic", "district", "language", "channel", "text"):
        table.add_column(column, overflow="fold")
    for r in rows:
        cells = (
            r.reference,
            f"{r.created_at.astimezone(zone):%Y-%m-%d %H:%M}",
            r.status,
            labels.topics.get(r.topic, r.topic),
            labels.districts.get(r.district, r.district) if r.district else "—",
            r.language,
            r.channel,
            shorten(r.text),
        )
        table.add_row(*(Text(cell) for cell in cells))  # residents' text is never console markup
    console = Console(file=out)
    if not console.is_terminal:  # a pipe or a file: wide enough for one idea a line
        console = Console(file=out, width=180)
    console.print(table)
    return 0
