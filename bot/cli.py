"""``python -m bot …`` — the commands of INTERFACES.md."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import uuid
from pathlib import Path
from typing import Sequence, TextIO

from bot.config import ConfigError, Settings, load_settings
from bot.flows import FlowError

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
    from bot.web import make_app

    kz = build(settings)
    await kz.db.migrate()
    # SQLite: one process is the whole bot. PostgreSQL: `worker` and `clock` do the rest.
    runner = web.AppRunner(make_app(kz, background=settings.is_sqlite), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"Kiezstimme is running. Open http://{shown_host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await kz.close()


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
    print(f"worker started ({settings.database_kind}); channels: {', '.join(kz.channels.push) or 'none'}", file=sys.stderr, flush=True)
    try:
        while not stop.is_set():
            try:
                await kz.inbox.recover(min_age=0 if settings.is_sqlite else 5)
            except Exception:  # noqa: BLE001 - keep working through a database outage
                log.exception("inbox recovery failed; trying again")
            try:
                await asyncio.wait_for(stop.wait(), timeout=2.0)
            except asyncio.TimeoutError:
                pass
    finally:
        await kz.close()
    return 0


# --- chat ------------------------------------------------------------------------


async def _chat(settings: Settings, lang: str | None, resident: str, stdin: TextIO, stdout: TextIO) -> int:
    from bot.app import build
    from channels import console
    from channels.base import Inbound

    kz = build(settings)
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
            inbound = Inbound(
                channel=console.NAME,
                address=resident,
                provider_id=uuid.uuid4().hex,
                text=line.rstrip("\r\n"),
                locale_hint=lang,
            )
            if await kz.service.receive(inbound) is not None:
                await kz.inbox.drain(inbound.channel, inbound.address)
            for message in await kz.service.take_pending(console.NAME, resident):
                stdout.write(message.text + "\n\n")
            stdout.flush()
    finally:
        await kz.close()
    return 0


# --- export -------------------------------------------------------------------------


async def _export(settings: Settings, what: str, fmt: str, output: str | None) -> int:
    from bot.export import export_feedback, export_ideas
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


# --- telegram set-webhook ---------------------------------------------------------------


async def _telegram_set_webhook(settings: Settings) -> int:
    from channels.registry import build_channels

    if not settings.public_url:
        print("configuration error: PUBLIC_URL must be set to the bot's public https address", file=sys.stderr)
        return 2
    channels = build_channels(settings, settings.media_max_bytes)
    if channels.telegram is None:
        print("configuration error: TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET are not set", file=sys.stderr)
        return 2
    try:
        await channels.telegram.set_webhook(settings.public_url)
    except Exception as exc:  # noqa: BLE001 - one clear line, never the token
        print(f"Telegram did not accept the webhook: {type(exc).__name__}", file=sys.stderr)
        return 1
    finally:
        await channels.close()
    print(f"Telegram now sends updates to {settings.public_url}/webhooks/telegram", file=sys.stderr)
    return 0


# --- flows check -------------------------------------------------------------------------


def _flows_check(settings: Settings, out: TextIO) -> int:
    from bot.catalog_check import check

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
    p = argparse.ArgumentParser(prog="python -m bot", description="Kiezstimme participation bot")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the web process (and, on SQLite, everything else)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT, else 8080")

    sub.add_parser("migrate", help="bring the database schema up to date")
    sub.add_parser("worker", help="deliver the outbox and finish stored messages (PostgreSQL deployments)")

    chat = sub.add_parser("chat", help="talk to the bot in the terminal (reads stdin)")
    chat.add_argument("--lang", default=None, help="language code, e.g. de or en")
    chat.add_argument("--resident", default="local", help="who you are in the terminal (default: local)")

    export = sub.add_parser("export", help="export ideas or feedback, pseudonymised")
    export.add_argument("what", choices=["ideas", "feedback"])
    export.add_argument("--format", choices=["csv", "json"], default="csv")
    export.add_argument("--output", default=None, help="file to write (default: stdout)")

    tg = sub.add_parser("telegram", help="Telegram administration")
    tg.add_argument("action", choices=["set-webhook"], help="register PUBLIC_URL/webhooks/telegram with the secret")

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
        elif args.command == "worker":
            return asyncio.run(_worker(settings))
        elif args.command == "chat":
            return asyncio.run(_chat(settings, args.lang, args.resident, sys.stdin, sys.stdout))
        elif args.command == "export":
            return asyncio.run(_export(settings, args.what, args.format, args.output))
        elif args.command == "telegram":
            return asyncio.run(_telegram_set_webhook(settings))
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
