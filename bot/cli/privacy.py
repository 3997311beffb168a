"""``python -m bot privacy …`` — the retention purge on demand (``purge [--dry-run]``);
``rotate-key`` lives in :mod:`bot.cli.privacy_keys`."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TextIO
from zoneinfo import ZoneInfo

from bot.config import Settings
from bot.participation.retention import DELIVERY, IDENTITIES, INBOX, KINDS, SESSIONS, Result, purge_now
from bot.service import utcnow

WHAT = {
    DELIVERY: "delivery log: texts, choices and addresses of messages",
    INBOX: "inbox: contents of failed or set-aside messages",
    IDENTITIES: "contact data: channel identities (how residents are reached)",
    SESSIONS: "contact data: sessions (where residents are in a dialogue)",
}


async def purge(settings: Settings, dry_run: bool, out: TextIO = sys.stdout, now: datetime | None = None) -> int:
    """Print what goes (``dry_run``: what would go, nothing changes) per kind, with the cut-offs."""
    from bot.conversation.flow_files import load_flows
    from bot.storage.db import Database

    process = load_flows(settings.flows_dir, settings.zone).process
    db = Database(settings.database_url)
    try:
        await db.migrate()
        result = await purge_now(settings, db, process, now or utcnow(), dry_run=dry_run)
    finally:
        await db.dispose()
    report(result, settings.zone, out)
    return 0


def report(result: Result, zone: ZoneInfo, out: TextIO) -> None:
    plan = result.plan
    verb = "would be emptied or removed (dry run, nothing changed)" if result.dry_run else "emptied or removed"
    print(f"retention purge at {_local(plan.now, zone)}: {result.total} {verb}", file=out)
    cutoffs = plan.cutoffs
    for kind in KINDS:
        if kind in result.counts:
            when = f"older than {_local(cutoffs[kind], zone)}"
            print(f"  {kind:<10} {result.counts[kind]:>7}  {when:<34} {WHAT[kind]}", file=out)
        elif plan.contact_from is not None:
            print(f"  {kind:<10} {'-':>7}  not before {_local(plan.contact_from, zone):<23} {WHAT[kind]}", file=out)
        else:
            print(f"  {kind:<10} {'-':>7}  {'kept (the process has no phases)':<34} {WHAT[kind]}", file=out)


def _local(when: datetime, zone: ZoneInfo) -> str:
    return when.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
