"""The explicit registry of channels.

Every channel's capabilities are known (the renderer needs them even for a
channel that is switched off now), and the provider channels are built only
when their variables (INTERFACES.md) are set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from channels import console, telegram, twilio_sms, webchat, whatsapp
from channels.base import Channel
from bot.values import Capabilities

if TYPE_CHECKING:  # pragma: no cover
    from bot.config import Settings
    from channels.telegram import TelegramChannel
    from channels.twilio_base import TwilioAccount
    from channels.twilio_sms import SmsChannel
    from channels.whatsapp import WhatsAppChannel

CAPABILITIES: dict[str, Capabilities] = {
    webchat.NAME: webchat.CAPABILITIES,
    console.NAME: console.CAPABILITIES,
    telegram.NAME: telegram.CAPABILITIES,
    twilio_sms.NAME: twilio_sms.CAPABILITIES,
    whatsapp.NAME: whatsapp.CAPABILITIES,
}

def capabilities(channel: str) -> Capabilities:
    return CAPABILITIES.get(channel, Capabilities())


@dataclass
class Channels:
    """The provider channels switched on by configuration."""

    telegram: "TelegramChannel | None" = None
    sms: "SmsChannel | None" = None
    whatsapp: "WhatsAppChannel | None" = None
    twilio: "TwilioAccount | None" = None
    push: dict[str, Channel] = field(default_factory=dict)

    async def close(self) -> None:
        if self.telegram is not None:
            await self.telegram.close()
        if self.twilio is not None:
            await self.twilio.close()


def build_channels(settings: "Settings", max_media_bytes: int) -> Channels:
    from channels.telegram import TelegramChannel
    from channels.twilio_base import TwilioAccount
    from channels.twilio_sms import SmsChannel
    from channels.whatsapp import WhatsAppChannel

    found = Channels()
    if settings.telegram_bot_token and settings.telegram_webhook_secret:
        found.telegram = TelegramChannel(
            settings.telegram_bot_token.get_secret_value(),
            settings.telegram_webhook_secret.get_secret_value(),
            settings.telegram_api_base_url,
        )
        found.push[telegram.NAME] = found.telegram
    if settings.twilio_account_sid and settings.twilio_auth_token:
        found.twilio = TwilioAccount(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            settings.twilio_api_base_url,
            settings.base_url,
        )
        if settings.twilio_sms_from or settings.twilio_messaging_service_sid:
            found.sms = SmsChannel(found.twilio, settings.twilio_sms_from, settings.twilio_messaging_service_sid, max_media_bytes)
            found.push[twilio_sms.NAME] = found.sms
        if settings.twilio_whatsapp_from:
            found.whatsapp = WhatsAppChannel(found.twilio, settings.twilio_whatsapp_from, max_media_bytes)
            found.push[whatsapp.NAME] = found.whatsapp
    return found
