"""Assemble the parts of a running Kiezstimme from its settings."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from bot.config import Settings
from bot.conversation.engine import Engine
from bot.conversation.flow_files import load_flows
from bot.conversation.flows import FlowSet
from bot.conversation.i18n import Catalogs
from bot.conversation.render import Renderer
from bot.delivery import limits
from bot.delivery.inbox import InboxProcessor
from bot.delivery.sender import Sender
from bot.metrics import Metrics
from bot.service import Clock, ConversationService, utcnow
from bot.storage.db import Database
from bot.storage.outbox import OutboxRepository
from channels.registry import Channels, build_channels

log = logging.getLogger(__name__)


@dataclass
class Kiezstimme:
    settings: Settings
    flows: FlowSet
    catalogs: Catalogs
    engine: Engine
    db: Database
    service: ConversationService
    channels: Channels
    inbox: InboxProcessor
    sender: Sender
    metrics: Metrics

    async def start_background(self) -> None:
        """Process what was left in the inbox and start delivering the outbox."""
        await self.inbox.recover()
        self.sender.start()
        self._recovery = asyncio.create_task(self.inbox.keep_recovering())

    async def stop_background(self) -> None:
        recovery = getattr(self, "_recovery", None)
        if recovery is not None:
            recovery.cancel()
            try:
                await recovery
            except asyncio.CancelledError:
                pass
        await self.sender.stop()
        await self.inbox.idle()

    async def refresh_gauges(self) -> None:
        """Queue depths for /metrics, read when scraped."""
        rows = await OutboxRepository(self.db).queue_depth()
        pending = await self.service.inbox.pending_count()
        self.metrics.queue_depth.clear()
        for channel, priority, count in rows:
            self.metrics.queue_depth.labels(channel, "reply" if priority == 0 else "bulk").set(count)
        self.metrics.inbox_depth.set(pending)

    async def close(self) -> None:
        await self.stop_background()
        await self.inbox.close()
        await self.channels.close()
        await self.db.dispose()


def build(
    settings: Settings, *, clock: Clock = utcnow, db: Database | None = None, web_only: bool = False
) -> Kiezstimme:
    """Load flows and catalogs (raising FlowError on problems) and wire the service.
    ``web_only``: this process stores and acknowledges, workers process."""
    flows = load_flows(settings.flows_dir, settings.zone)
    catalogs = Catalogs.load(flows, settings.i18n_dir)
    engine = Engine(flows, catalogs)
    data_key = settings.data_key.get_secret_value() if settings.data_key else None
    db = db or Database(settings.database_url, data_key=data_key)
    channels = build_channels(settings, settings.media_max_bytes)
    service = ConversationService(
        db,
        engine,
        Renderer(catalogs),
        session_timeout=settings.session_timeout,
        media_dir=settings.media_dir,
        media_max_bytes=settings.media_max_bytes,
        channels=channels,
        clock=clock,
        zone=settings.zone,
    )
    metrics = Metrics()
    service.metrics = metrics
    limits.install(service, settings)  # flood control and the loop guard
    sender = Sender(db, channels.push, flows, clock, rates=channels.rates, metrics=metrics)
    service.on_outbox = sender.wake
    inbox = InboxProcessor(service, web_only=web_only)
    sender.yield_to(inbox.busy)
    return Kiezstimme(settings, flows, catalogs, engine, db, service, channels, inbox, sender, metrics)
