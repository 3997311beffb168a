"""The operator's commands: the long-running processes (``serve``, ``worker``,
``clock``) and the one-off steps of a deployment (``migrate``, ``CHANNEL
set-webhook``)."""

from __future__ import annotations

import asyncio
import logging
import sys

from bot.config import Settings

log = logging.getLogger("bot")


async def serve(settings: Settings, host: str, port: int, web_only: bool = False) -> None:
    from aiohttp import web

    from bot.app import build
    from bot.web.app import make_app

    if web_only and settings.is_sqlite:
        print("configuration error: --web-only needs PostgreSQL (on SQLite serve is the whole bot)", file=sys.stderr)
        raise SystemExit(2)
    kz = build(settings, web_only=web_only)
    await kz.db.migrate()
    # SQLite: one process is the whole bot. PostgreSQL: `worker` and `clock` do the rest.
    runner = web.AppRunner(make_app(kz, background=settings.is_sqlite), access_log=None)
    reminder_clock = None
    if settings.is_sqlite:
        from bot.participation.scheduler import ReminderClock

        reminder_clock = ReminderClock(kz, grace=settings.reminder_grace)
        reminder_clock.start()
    await runner.setup()
    # a deep accept queue: a burst of new connections waits a moment instead of being dropped
    # (a dropped SYN costs the client a full second before it tries again)
    site = web.TCPSite(runner, host, port, backlog=4096)
    await site.start()
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"Kiezstimme is running. Open http://{shown_host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        if reminder_clock is not None:
            reminder_clock.stop()
        await runner.cleanup()
        await kz.close()


def _stop_on_signals() -> asyncio.Event:
    """An event that SIGTERM or SIGINT sets: how a process manager stops a worker or the clock."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def clock(settings: Settings) -> int:
    from bot.app import build
    from bot.participation.scheduler import ReminderClock

    kz = build(settings)
    reminder_clock = ReminderClock(kz, grace=settings.reminder_grace)
    stop = _stop_on_signals()
    reminder_clock.start()
    print("clock started: reminders and announcements are scheduled", file=sys.stderr, flush=True)
    try:
        await stop.wait()
    finally:
        reminder_clock.stop()
        await kz.close()
    return 0


async def worker(settings: Settings) -> int:
    """Deliver the outbox (one sender per channel across all workers) and process
    inbox messages that a web process stored but did not finish."""
    from bot.app import build

    kz = build(settings)
    stop = _stop_on_signals()
    kz.sender.start()
    print(
        f"worker started ({settings.database_kind}); channels: {', '.join(kz.channels.push) or 'none'}",
        file=sys.stderr,
        flush=True,
    )
    try:
        while not stop.is_set():  # take waiting senders no other process drains (see SenderClaims)
            try:
                await kz.inbox.recover()
            except Exception:  # noqa: BLE001 - keep working through a database outage
                log.exception("inbox recovery failed; trying again")
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.25)
            except TimeoutError:
                pass
    finally:
        await kz.close()
    return 0


async def migrate(settings: Settings) -> int:
    from bot.storage.db import Database

    db = Database(settings.database_url)
    try:
        await db.migrate()
    finally:
        await db.dispose()
    print("database schema is up to date", file=sys.stderr)
    return 0


async def set_webhook(settings: Settings, name: str) -> int:
    """``CHANNEL set-webhook``, for the channels that register their webhook (e.g. telegram)."""
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
