"""SMS through Twilio: numbered menus for basic phones, GSM-7 where possible."""

from __future__ import annotations

from typing import Any, Mapping

from bot.values import Media
from bot.delivery.media import kind_of
from bot.values import Capabilities, Inbound, Outgoing, Sent
from channels.twilio_base import TwilioAccount, e164

NAME = "sms"
CAPABILITIES = Capabilities(buttons=False, max_text=1600, media=(), encoding="gsm7")


def remote_media(form: Mapping[str, Any]) -> Media | None:
    """The first attachment of a Twilio webhook, still to be fetched."""
    try:
        count = int(form.get("NumMedia") or 0)
    except ValueError:
        count = 0
    if count < 1 or not form.get("MediaUrl0"):
        return None
    mime = str(form.get("MediaContentType0") or "")
    kind = kind_of(mime) or "unsupported"
    source = {"url": str(form["MediaUrl0"]), "mime": mime} if kind != "unsupported" else None
    return Media(kind=kind, ref="", mime=mime, size=0, source=source)


class SmsChannel:
    name = NAME
    capabilities = CAPABILITIES

    def __init__(self, account: TwilioAccount, sender: str | None, messaging_service_sid: str | None, max_media_bytes: int) -> None:
        self.account = account
        self.sender = sender
        self.messaging_service_sid = messaging_service_sid
        self.max_media_bytes = max_media_bytes

    def __repr__(self) -> str:
        return "SmsChannel()"

    def parse(self, form: Mapping[str, Any]) -> Inbound:
        return Inbound(
            channel=NAME,
            address=e164(str(form["From"])),
            provider_id=str(form["MessageSid"]),
            text=str(form.get("Body") or ""),
            media=remote_media(form),
        )

    async def send(self, address: str, message: Outgoing) -> Sent:
        return await self.account.create_message(
            to=address,
            from_=None if self.messaging_service_sid else self.sender,
            messaging_service_sid=self.messaging_service_sid,
            body=message.text,
        )

    async def fetch_media(self, source: dict[str, Any]) -> tuple[str, bytes] | None:
        return await self.account.download(source["url"], self.max_media_bytes)

    async def close(self) -> None:
        await self.account.close()
