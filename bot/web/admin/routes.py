"""Every dashboard page's routes, one module per part."""

from __future__ import annotations

from aiohttp import web

from bot.app import Kiezstimme
from bot.web.admin import accounts, auth, broadcasts, core, exports, ideas, partners, stats


def setup(app: web.Application, kz: Kiezstimme) -> None:
    core.setup(app, kz)
    for part in (auth, ideas, broadcasts, partners, stats, exports, accounts):
        part.add_routes(app)
