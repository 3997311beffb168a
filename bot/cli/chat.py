"""``chat``: talk to the bot in the terminal, as a resident would on a channel."""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO

from bot.config import Settings


async def terminal_chat(settings: Settings, lang: str | None, resident: str, stdin: TextIO, stdout: TextIO) -> int:
    from bot.app import build

    kz = build(settings)
    console = kz.channels.console
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
            inbound = console.message(resident, line.rstrip("\r\n"), lang)
            await kz.inbox.receive(inbound, wait=True)
            for message in await kz.service.take_pending(console.name, resident):
                stdout.write(message.text + "\n\n")
            stdout.flush()
    finally:
        await kz.close()
    return 0
