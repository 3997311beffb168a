"""The explicit registry of channels: name -> capabilities (and, for the
provider channels, an adapter built when their variables are set)."""

from __future__ import annotations

from channels import console, webchat
from channels.base import Capabilities

CAPABILITIES: dict[str, Capabilities] = {
    webchat.NAME: webchat.CAPABILITIES,
    console.NAME: console.CAPABILITIES,
}

CHANNEL_NAMES = ("telegram", "sms", "whatsapp", "webchat", "console")


def capabilities(channel: str) -> Capabilities:
    return CAPABILITIES.get(channel, Capabilities())
