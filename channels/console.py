"""The terminal: ``python -m bot chat`` (scriptable through stdin)."""

from __future__ import annotations

from bot.values import Capabilities

NAME = "console"
CAPABILITIES = Capabilities(buttons=False, max_text=10_000)
