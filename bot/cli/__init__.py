"""``python -m bot …`` — the commands of INTERFACES.md."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import TextIO

from bot.config import ConfigError, Settings, load_settings
from bot.conversation.flows import FlowError

log = logging.getLogger("bot")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors (LOG_FORMAT=json)."""

    def format(self, record: logging.LogRecord) -> str:
        import json

        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if (os.environ.get("LOG_FORMAT") or "").lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
    # third-party loggers that would print URLs containing tokens
    for noisy in ("httpx", "telegram", "twilio.http_client", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))


# --- serve ----------------------------------------------------------------------


async def _serve(settings: Settings, host: str, port: int) -> None:
    from aiohttp import web

    from bot.app import build
    from bot.web.app import make_app

    kz = build(settings)
    await kz.db.migrate()
    # SQLite: one process is the whole bot. PostgreSQL: `worker` and `clock` do the rest.
    runner = web.AppRunner(make_app(kz, background=settings.is_sqlite), access_log=None)
    clock = None
    if settings.is_sqlite:
        from bot.participation.scheduler import ReminderClock

        clock = ReminderClock(kz, grace=settings.reminder_grace)
        clock.start()
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"Kiezstimme is running. Open http://{shown_host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        if clock is not None:
            clock.stop()
        await runner.cleanup()
        await kz.close()


# --- clock, phases, broadcast, ideas ------------------------------------------------------


async def _clock(settings: Settings) -> int:
    import signal

    from bot.app import build
    from bot.participation.scheduler import ReminderClock

    kz = build(settings)
    clock = ReminderClock(kz, grace=settings.reminder_grace)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    clock.start()
    print("clock started: reminders and announcements are scheduled", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        clock.stop()
        await kz.close()
    return 0


async def _phases(settings: Settings) -> int:
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


async def _broadcast(settings: Settings, args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from bot.app import build
    from bot.delivery.outbox import Audience
    from bot.participation import broadcasts as bc
    from bot.participation.reminders import in_every_language

    console = Console()
    kz = build(settings)
    try:
        texts = _parse_texts(args.text or [])
        if args.phase:
            phase = kz.flows.process.phase(args.phase)
            if phase is None or not phase.announcement:
                console.print(f"[red]no phase {args.phase!r} with an announcement[/red]")
                return 2
            texts = in_every_language(kz, phase.announcement)[0] | texts
        if not texts:
            console.print("[red]give --text LANG=TEXT (repeatable) or --phase PHASE[/red]")
            return 2
        unknown = [lang for lang in [*texts, args.fallback or ""] if lang and not kz.flows.language(lang)]
        if unknown:
            console.print(f"[red]unknown language(s): {', '.join(unknown)}[/red]")
            return 2
        audience = Audience(
            channels=tuple(args.channel or ()),
            languages=tuple(args.language or ()),
            districts=tuple(args.district or ()),
            topics=tuple(args.topic or ()),
        )
        preview = await bc.dry_run(kz, texts, args.fallback, audience, settings.sms_price)
        table = Table(title="Audience")
        for column in (
            "channel",
            "language",
            "text",
            "residents",
            "SMS segments",
            "est. cost",
            "WhatsApp outside 24 h",
        ):
            table.add_column(column)
        for row in preview.rows:
            outside = ""
            if "outside_window" in row:  # a channel with a reply window
                outside = f"{row['outside_window']} ({'template' if row['template'] else 'not sent: no template'})"
            table.add_row(
                row["channel"],
                row["language"],
                row["text_language"],
                str(row["residents"]),
                str(row.get("segments", "")),
                f"{row['cost']:.2f} {settings.currency}" if "cost" in row else "",
                outside,
            )
        console.print(table)
        for lang, n in sorted(preview.without_text.items()):
            console.print(
                f"{n} resident(s) in {lang}: no text in their language{'' if not args.fallback else ''} — skipped"
            )
        console.print(f"total: {preview.total} message(s)")
        if args.dry_run:
            return 0
        if not args.yes:
            answer = await asyncio.to_thread(input, "Send now? [y/N] ")
            if answer.strip().lower() not in ("y", "yes", "j", "ja"):
                console.print("nothing sent")
                return 1
        key = args.key or bc.broadcast_key(texts, args.fallback, audience)
        enqueued = await bc.send(kz, key, texts, args.fallback, audience)
        console.print(f"{enqueued} message(s) queued (key {key}; sending it again sends nothing twice)")
        if settings.is_sqlite:
            kz.sender.start()  # the embedded bot: deliver from here as well (claims are atomic)
        counts = await bc.follow(kz, key, console, timeout=timedelta(0) if args.no_wait else None)
        console.print(", ".join(f"{status}: {n}" for status, n in sorted(counts.items())))
        return 0
    finally:
        await kz.close()


async def _ideas_set_status(settings: Settings, reference: str, status: str, notify: bool) -> int:
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


# --- worker ---------------------------------------------------------------------------


async def _worker(settings: Settings) -> int:
    """Deliver the outbox (one sender per channel across all workers) and process
    inbox messages that a web process stored but did not finish."""
    import signal

    from bot.app import build

    kz = build(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    kz.sender.start()
    print(
        f"worker started ({settings.database_kind}); channels: {', '.join(kz.channels.push) or 'none'}",
        file=sys.stderr,
        flush=True,
    )
    try:
        while not stop.is_set():
            try:
                await kz.inbox.recover(min_age=0 if settings.is_sqlite else 5)
            except Exception:  # noqa: BLE001 - keep working through a database outage
                log.exception("inbox recovery failed; trying again")
            try:
                await asyncio.wait_for(stop.wait(), timeout=2.0)
            except TimeoutError:
                pass
    finally:
        await kz.close()
    return 0


# --- chat ------------------------------------------------------------------------


async def _chat(settings: Settings, lang: str | None, resident: str, stdin: TextIO, stdout: TextIO) -> int:
    from bot.app import build

    kz = build(settings)
    chat = kz.channels.console
    await kz.db.migrate()
    interactive = stdin.isatty()
    if interactive:
        print("Type your message and press Enter; Ctrl-D to quit.", file=sys.stderr)
    try:
        while True:
            if interactive:
                stdout.write("> ")
                stdout.flush()
            line = await asyncio.to_thread(stdin.readline)
            if not line:
                break
            inbound = chat.message(resident, line.rstrip("\r\n"), lang)
            await kz.inbox.receive(inbound, wait=True)
            for message in await kz.service.take_pending(chat.name, resident):
                stdout.write(message.text + "\n\n")
            stdout.flush()
    finally:
        await kz.close()
    return 0


# --- export -------------------------------------------------------------------------


async def _export(settings: Settings, what: str, fmt: str, output: str | None) -> int:
    from bot.participation.export import export_feedback, export_ideas
    from bot.storage.db import Database

    exporter = export_ideas if what == "ideas" else export_feedback

    db = Database(settings.database_url)
    try:
        await db.migrate()
        if output:
            with open(output, "w", encoding="utf-8", newline="") as fh:
                count = await exporter(db, settings, fmt, fh)
            print(f"{count} {what} records written to {output}", file=sys.stderr)
        else:
            await exporter(db, settings, fmt, sys.stdout)
    finally:
        await db.dispose()
    return 0


# --- CHANNEL set-webhook (channels that register their webhook, e.g. telegram) ------------------


async def _set_webhook(settings: Settings, name: str) -> int:
    from channels.registry import build_channels, spec

    if not settings.public_url:
        print("configuration error: PUBLIC_URL must be set to the bot's public https address", file=sys.stderr)
        return 2
    channels = build_channels(settings, settings.media_max_bytes)
    adapter = channels.get(name)
    try:
        if adapter is None:
            known = spec(name)
            print(f"configuration error: {known.requires if known else name} not set", file=sys.stderr)
            return 2
        url = await adapter.register_webhook(settings.public_url)  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001 - one clear line, never the token
        print(f"{name} did not accept the webhook: {type(exc).__name__}", file=sys.stderr)
        return 1
    finally:
        await channels.close()
    print(f"{name} now sends updates to {url}", file=sys.stderr)
    return 0


# --- flows check -------------------------------------------------------------------------


def _flows_check(settings: Settings, out: TextIO) -> int:
    from bot.conversation.catalog_check import check

    problems, summary = check(settings)
    for line in summary:
        print(line, file=out)
    for problem in problems:
        print(problem, file=out)
    if problems:
        print(f"{len(problems)} problem(s) found", file=out)
        return 1
    print("flows and translations are complete", file=out)
    return 0


# --- main -------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    from channels.registry import bulk_names, specs

    p = argparse.ArgumentParser(prog="python -m bot", description="Kiezstimme participation bot")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the web process (and, on SQLite, everything else)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT, else 8080")

    sub.add_parser("migrate", help="bring the database schema up to date")
    sub.add_parser("worker", help="deliver the outbox and finish stored messages (PostgreSQL deployments)")
    sub.add_parser(
        "clock", help="the one scheduler process: reminders and phase announcements (PostgreSQL deployments)"
    )
    sub.add_parser("phases", help="the phases with their state and the next scheduled reminders")

    bc = sub.add_parser("broadcast", help="an announcement to residents who opted in, each in their language")
    bc.add_argument(
        "--text", action="append", metavar="LANG=TEXT", help="text per language (repeat); LANG=@file reads a file"
    )
    bc.add_argument("--phase", help="use this phase's announcement, translated")
    bc.add_argument(
        "--fallback", metavar="LANG", help="text for residents whose language has none (else they are skipped)"
    )
    bc.add_argument("--channel", action="append", choices=list(bulk_names()))
    bc.add_argument("--language", action="append")
    bc.add_argument("--district", action="append")
    bc.add_argument("--topic", action="append", help="residents whose ideas have this topic")
    bc.add_argument("--dry-run", action="store_true", help="show the audience and cost; send nothing")
    bc.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    bc.add_argument("--key", help="idempotency key (default: derived from texts and audience)")
    bc.add_argument("--no-wait", action="store_true", help="queue and return without following delivery")

    ideas = sub.add_parser("ideas", help="moderate ideas")
    ideas.add_argument("action", choices=["set-status"])
    ideas.add_argument("reference")
    ideas.add_argument("status", choices=["new", "approved", "hidden", "spam"])
    ideas.add_argument("--no-notify", action="store_true", help="do not tell the resident")

    chat = sub.add_parser("chat", help="talk to the bot in the terminal (reads stdin)")
    chat.add_argument("--lang", default=None, help="language code, e.g. de or en")
    chat.add_argument("--resident", default="local", help="who you are in the terminal (default: local)")

    export = sub.add_parser("export", help="export ideas or feedback, pseudonymised")
    export.add_argument("what", choices=["ideas", "feedback"])
    export.add_argument("--format", choices=["csv", "json"], default="csv")
    export.add_argument("--output", default=None, help="file to write (default: stdout)")

    for known in specs():
        if known.registers_webhook:
            admin = sub.add_parser(known.name, help=f"{known.name} administration")
            admin.add_argument(
                "action", choices=["set-webhook"], help=f"register PUBLIC_URL/webhooks/... with {known.name}"
            )

    flows = sub.add_parser("flows", help="work with the flow files")
    flows.add_argument("action", choices=["check"])
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    _setup_logging(settings.log_level)
    try:
        if args.command == "serve":
            port = args.port or settings.port
            asyncio.run(_serve(settings, args.host, port))
        elif args.command == "migrate":
            from bot.storage.db import Database

            async def migrate() -> None:
                db = Database(settings.database_url)
                try:
                    await db.migrate()
                finally:
                    await db.dispose()

            asyncio.run(migrate())
            print("database schema is up to date", file=sys.stderr)
        elif args.command == "clock":
            return asyncio.run(_clock(settings))
        elif args.command == "phases":
            return asyncio.run(_phases(settings))
        elif args.command == "broadcast":
            return asyncio.run(_broadcast(settings, args))
        elif args.command == "ideas":
            return asyncio.run(_ideas_set_status(settings, args.reference, args.status, not args.no_notify))
        elif args.command == "worker":
            return asyncio.run(_worker(settings))
        elif args.command == "chat":
            return asyncio.run(_chat(settings, args.lang, args.resident, sys.stdin, sys.stdout))
        elif args.command == "export":
            return asyncio.run(_export(settings, args.what, args.format, args.output))
        elif getattr(args, "action", None) == "set-webhook":
            return asyncio.run(_set_webhook(settings, args.command))
        elif args.command == "flows":
            return _flows_check(settings, sys.stdout)
    except FlowError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
