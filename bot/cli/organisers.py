"""The organisers' commands: ``phases``, ``broadcast``, ``ideas set-status``,
``export`` and ``flows check`` (``ideas list`` lives in :mod:`bot.cli.ideas_list`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TextIO

from bot.config import Settings

if TYPE_CHECKING:
    from rich.console import Console

    from bot.app import Kiezstimme
    from bot.delivery.outbox import Audience
    from bot.participation.broadcasts import DryRun

# --- phases ----------------------------------------------------------------------------


async def phases(settings: Settings) -> int:
    from rich.console import Console
    from rich.table import Table

    from bot.app import build
    from bot.participation.reminders import schedule

    kz = build(settings)
    now = kz.service.clock()
    zone = settings.zone
    console = Console()
    table = Table(title=f"Phases ({settings.timezone})")
    for column in ("phase", "name", "starts", "ends", "state", "dialogues"):
        table.add_column(column)
    for p in kz.flows.process.phases:
        table.add_row(
            p.id,
            p.name,
            f"{p.starts.astimezone(zone):%Y-%m-%d %H:%M}",
            f"{p.ends.astimezone(zone):%Y-%m-%d %H:%M}",
            p.state(now),
            ", ".join(p.dialogues),
        )
    console.print(table)
    upcoming = [(job, at, what) for job, at, what in schedule(kz, now) if at > now]
    reminders = Table(title="Next scheduled reminders and announcements")
    for column in ("when", "what", "job"):
        reminders.add_column(column)
    for job, at, what in upcoming[:10]:
        reminders.add_row(f"{at.astimezone(zone):%Y-%m-%d %H:%M}", what, job)
    if not upcoming:
        reminders.add_row("—", "nothing scheduled", "")
    console.print(reminders)
    await kz.close()
    return 0


# --- broadcast -------------------------------------------------------------------------


def _parse_texts(pairs: list[str]) -> dict[str, str]:
    texts = {}
    for pair in pairs:
        lang, sep, text = pair.partition("=")
        if not sep or not lang or not text:
            raise SystemExit(f"--text must look like de=Text or de=@file.txt, got {pair!r}")
        if text.startswith("@"):
            with open(text[1:], encoding="utf-8") as fh:
                text = fh.read().strip()
        texts[lang.strip()] = text
    return texts


def _broadcast_texts(kz: Kiezstimme, args: argparse.Namespace, console: Console) -> dict[str, str] | None:
    """The text per language from --text and --phase; None (after saying why) when unusable."""
    from bot.participation.reminders import in_every_language

    texts = _parse_texts(args.text or [])
    if args.phase:
        phase = kz.flows.process.phase(args.phase)
        if phase is None or not phase.announcement:
            console.print(f"[red]no phase {args.phase!r} with an announcement[/red]")
            return None
        texts = in_every_language(kz, phase.announcement)[0] | texts
    if not texts:
        console.print("[red]give --text LANG=TEXT (repeatable) or --phase PHASE[/red]")
        return None
    unknown = [lang for lang in [*texts, args.fallback or ""] if lang and not kz.flows.language(lang)]
    if unknown:
        console.print(f"[red]unknown language(s): {', '.join(unknown)}[/red]")
        return None
    return texts


def _audience(args: argparse.Namespace) -> Audience:
    from bot.delivery.outbox import Audience

    return Audience(
        channels=tuple(args.channel or ()),
        languages=tuple(args.language or ()),
        districts=tuple(args.district or ()),
        topics=tuple(args.topic or ()),
        sources=tuple(getattr(args, "source", None) or ()),
    )


KEY_MAX = 64  # the broadcasts table's key column

_AUDIENCE_COLUMNS = (
    "channel",
    "language",
    "text",
    "residents",
    "SMS segments",
    "est. cost",
    "WhatsApp outside 24 h",
)


def _audience_row(row: dict[str, Any], currency: str) -> tuple[str, ...]:
    outside = ""
    if "outside_window" in row:  # a channel with a reply window
        outside = f"{row['outside_window']} ({'template' if row['template'] else 'not sent: no template'})"
    return (
        row["channel"],
        row["language"],
        row["text_language"],
        str(row["residents"]),
        str(row.get("segments", "")),
        f"{row['cost']:.2f} {currency}" if "cost" in row else "",
        outside,
    )


def _print_dry_run(console: Console, preview: DryRun, currency: str) -> None:
    """Who would get the broadcast, in which language, at what cost; who is skipped."""
    from rich.table import Table

    table = Table(title="Audience")
    for column in _AUDIENCE_COLUMNS:
        table.add_column(column)
    for row in preview.rows:
        table.add_row(*_audience_row(row, currency))
    console.print(table)
    for lang, n in sorted(preview.without_text.items()):
        console.print(f"{n} resident(s) in {lang}: no text in their language — skipped")
    console.print(f"total: {preview.total} message(s)")


async def _organiser_confirms(console: Console) -> bool:
    answer = await asyncio.to_thread(input, "Send now? [y/N] ")
    if answer.strip().lower() not in ("y", "yes", "j", "ja"):
        console.print("nothing sent")
        return False
    return True


async def _send_and_follow(
    kz: Kiezstimme,
    settings: Settings,
    args: argparse.Namespace,
    texts: dict[str, str],
    audience: Audience,
    console: Console,
) -> None:
    """Record the broadcast (in the dashboard's list too, by "cli"), queue it under its
    idempotency key and report delivery as it goes."""
    from bot.participation import broadcasts as bc
    from bot.storage.broadcasts import BroadcastRepository

    key = args.key or bc.broadcast_key(texts, args.fallback, audience)
    broadcast_id, _new = await bc.record(
        kz, key=key, texts=texts, fallback=args.fallback, audience=audience, created_by="cli"
    )
    recorded = await BroadcastRepository(kz.db).get(broadcast_id)
    if recorded is None or recorded.cancelled_at is not None:
        console.print(f"broadcast {broadcast_id} (key {key}) was cancelled: nothing sent")
        return
    enqueued = await bc.queue(kz, recorded)
    console.print(f"{enqueued} message(s) queued (key {key}; sending it again sends nothing twice)")
    if settings.is_sqlite:
        kz.sender.start()  # the embedded bot: deliver from here as well (claims are atomic)
    counts = await bc.follow(kz, key, console, timeout=timedelta(0) if args.no_wait else None)
    console.print(", ".join(f"{status}: {n}" for status, n in sorted(counts.items())))


async def broadcast(settings: Settings, args: argparse.Namespace) -> int:
    """Read the texts, show the audience (the dry run), confirm, then send and follow."""
    from rich.console import Console

    from bot.app import build
    from bot.participation import broadcasts as bc

    console = Console()
    kz = build(settings)
    try:
        texts = _broadcast_texts(kz, args, console)
        if texts is None:
            return 2
        if args.key and len(args.key) > KEY_MAX:
            console.print(f"[red]--key may have at most {KEY_MAX} characters (it names the broadcast)[/red]")
            return 2
        audience = _audience(args)
        preview = await bc.dry_run(kz, texts, args.fallback, audience, settings.sms_price)
        _print_dry_run(console, preview, settings.currency)
        if args.dry_run:
            return 0
        if not args.yes and not await _organiser_confirms(console):
            return 1
        await _send_and_follow(kz, settings, args, texts, audience, console)
        return 0
    finally:
        await kz.close()


# --- ideas set-status, export, flows check ------------------------------------------------


async def ideas_set_status(settings: Settings, reference: str, status: str, notify: bool) -> int:
    from bot.app import build
    from bot.participation.reminders import set_idea_status

    kz = build(settings)
    try:
        found, notices = await set_idea_status(kz, reference, status, kz.service.clock(), notify=notify)
    finally:
        await kz.close()
    if not found:
        print(f"no idea with the reference {reference}", file=sys.stderr)
        return 1
    print(f"{reference.upper()} is now {status}; {notices} notice(s) to the resident queued", file=sys.stderr)
    return 0


async def export(settings: Settings, what: str, fmt: str, output: str | None) -> int:
    """Ideas or feedback as CSV or JSON; ideas also in adhocracy4's and Decidim's import shapes."""
    from bot.participation.export import Labels, export_feedback, export_ideas
    from bot.storage.db import Database

    if what != "ideas" and fmt not in ("csv", "json"):
        print(f"--format {fmt} is a shape for ideas; feedback exports as csv or json", file=sys.stderr)
        return 2
    exporter = export_ideas if what == "ideas" else export_feedback
    labels = Labels.load(settings)  # before the database: a broken flow stops here, nothing opened

    db = Database(settings.database_url)
    try:
        await db.migrate()
        if output:
            with open(output, "w", encoding="utf-8", newline="") as fh:
                count = await exporter(db, settings, fmt, fh, labels)
            print(f"{count} {what} records written to {output}", file=sys.stderr)
        else:
            await exporter(db, settings, fmt, sys.stdout, labels)
    finally:
        await db.dispose()
    return 0


def _reference_problems(settings: Settings) -> list[str]:
    """What is wrong with the statistics' reference figures (flows/reference/population.yaml)."""
    from bot.conversation.flow_files import load_flows
    from bot.conversation.flows import FlowError
    from bot.participation.reference import ReferenceError, load_reference

    try:
        load_reference(settings.flows_dir, load_flows(settings.flows_dir, settings.zone))
    except FlowError:
        return []  # the flows' own problems are reported by the catalog check
    except ReferenceError as exc:
        return list(exc.problems)
    return []


def flows_check(settings: Settings, out: TextIO) -> int:
    from bot.cli.sms_report import report
    from bot.conversation.catalog_check import check

    problems, summary = check(settings)
    sms_problems, sms_table = report(settings)  # what each question costs by SMS, per language
    summary += sms_table
    problems += sms_problems
    problems += _reference_problems(settings)
    for line in summary:
        print(line, file=out)
    for problem in problems:
        print(problem, file=out)
    if problems:
        print(f"{len(problems)} problem(s) found", file=out)
        return 1
    print("flows and translations are complete", file=out)
    return 0
