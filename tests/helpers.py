"""A first-class fake channel for the pure engine (errbot's TestBackend idea):
a whole dialogue is a list of lines, every reply rendered as a resident sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.config import SHIPPED_FLOWS_DIR, SHIPPED_I18N_DIR
from bot.conversation.engine import Engine
from bot.conversation.flow_files import load_flows
from bot.conversation.flows import FlowSet
from bot.conversation.i18n import Catalogs
from bot.conversation.render import Renderer
from bot.conversation.session import Conversation
from bot.conversation.step import Context, Effect, Message
from bot.values import Capabilities, Media

NUMBERED = Capabilities(buttons=False)
_flows_cache: dict[Path, tuple[FlowSet, Catalogs]] = {}


def shipped(flows_dir: Path | None = None, i18n_dir: Path = SHIPPED_I18N_DIR) -> tuple[FlowSet, Catalogs]:
    """The shipped flows (with every phase open, see conftest.OPEN_FLOWS)."""
    import os

    flows_dir = Path(flows_dir or os.environ.get("FLOWS_DIR") or SHIPPED_FLOWS_DIR)
    if flows_dir not in _flows_cache:
        flows = load_flows(flows_dir)
        _flows_cache[flows_dir] = (flows, Catalogs.load(flows, i18n_dir))
    return _flows_cache[flows_dir]


@dataclass
class Talk:
    """Drive the engine like a resident would; keeps state between lines."""

    engine: Engine
    now: datetime = field(default_factory=lambda: datetime(2026, 11, 26, 9, 0, tzinfo=UTC))
    conv: Conversation = field(default_factory=Conversation)
    effects: list[Effect] = field(default_factory=list)
    caps: Capabilities = NUMBERED
    accepts_media: bool = False
    reference: str = "K7Q-3MX"

    @classmethod
    def shipped(cls, **kwargs: object) -> Talk:
        flows, catalogs = shipped()
        return cls(Engine(flows, catalogs), **kwargs)  # type: ignore[arg-type]

    def send(
        self,
        text: str | None = None,
        *,
        choice: str | None = None,
        media: Media | None = None,
        hint: str | None = None,
        unsupported: str | None = None,
        album: str | None = None,
        more_media: tuple[Media, ...] = (),
    ) -> list[str]:
        ctx = Context(
            now=self.now, new_reference=self.reference, accepts_media=self.accepts_media, buttons=self.caps.buttons
        )
        message = Message(
            text=text,
            choice=choice,
            media=media,
            locale_hint=hint,
            unsupported=unsupported,
            album=album,
            more_media=more_media,
        )
        outcome = self.engine.step(self.conv, message, ctx)
        self.conv = outcome.conversation
        self.effects.extend(outcome.effects)
        self.last = outcome
        renderer = Renderer(self.engine.catalogs)
        return [renderer.render(r, self.caps).text for r in outcome.replies]

    def say(self, text: str | None = None, **kw: object) -> str:
        """Send and return all replies joined, for substring assertions."""
        return "\n\n".join(self.send(text, **kw))  # type: ignore[arg-type]

    def wait(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    @property
    def node(self) -> str | None:
        return self.conv.dialogue.node
