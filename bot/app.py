"""Assemble the parts of a running Kiezstimme from its settings."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.config import Settings
from bot.engine import Engine
from bot.flows import FlowSet, load_flows
from bot.i18n import Catalogs
from bot.render import Renderer
from bot.service import Clock, ConversationService, utcnow
from bot.storage.db import Database

log = logging.getLogger(__name__)


@dataclass
class Kiezstimme:
    settings: Settings
    flows: FlowSet
    catalogs: Catalogs
    engine: Engine
    db: Database
    service: ConversationService

    async def close(self) -> None:
        await self.db.dispose()


def build(settings: Settings, *, clock: Clock = utcnow, db: Database | None = None) -> Kiezstimme:
    """Load flows and catalogs (raising FlowError on problems) and wire the service."""
    flows = load_flows(settings.flows_dir)
    catalogs = Catalogs.load(flows, settings.i18n_dir)
    engine = Engine(flows, catalogs)
    db = db or Database(settings.database_url)
    service = ConversationService(
        db,
        engine,
        Renderer(catalogs),
        session_timeout=settings.session_timeout,
        media_dir=settings.media_dir,
        clock=clock,
    )
    return Kiezstimme(settings, flows, catalogs, engine, db, service)
