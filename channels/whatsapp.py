"""WhatsApp through Twilio: free text within 24 hours of the resident's last
message, an approved template (Content SID) outside it."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, Mapping

from bot.values import Capabilities, Inbound, Outgoing, Sent
from channels.twilio_base import TwilioAccount, e164
from channels.twilio_sms import remote_media

NAME = "whatsapp"
CAPABILITIES = Capabilities(buttons=False, max_text=1600, media=("voice", "photo"), reply_window=timedelta(hours=24))
PREFIX = "whatsapp:"


class WhatsAppChannel:
    name = NAME
    capabilities = CAPABILITIES

    def __init__(self, account: TwilioAccount, sender: str, max_media_bytes: int) -> None:
        self.account = account
        self.sender = sender if sender.startswith(PREFIX) else PREFIX + sender
        self.max_media_bytes = max_media_bytes

    def __repr__(self) -> str:
        return "WhatsAppChannel()"

    def parse(self, form: Mapping[str, Any]) -> Inbound:
        raw = str(form["From"])
        number = raw[len(PREFIX):] if raw.startswith(PREFIX) else raw
        if not number.startswith("+") and form.get("WaId"):
            number = "+" + str(form["WaId"])
        payload = form.get("ButtonPayload")
        return Inbound(
            channel=NAME,
            address=e164(number),
            provider_id=str(form["MessageSid"]),
            text=None if payload else str(form.get("Body") or ""),
            choice=str(payload) if payload else None,
            media=remote_media(form),
        )

    async def send(self, address: str, message: Outgoing) -> Sent:
        if message.template:
            return await self.account.create_message(
                to=PREFIX + address,
                from_=self.sender,
                content_sid=message.template,
                content_variables=json.dumps({"1": message.text}, ensure_ascii=False),
            )
        return await self.account.create_message(to=PREFIX + address, from_=self.sender, body=message.text)

    async def fetch_media(self, source: dict[str, Any]) -> tuple[str, bytes] | None:
        return await self.account.download(source["url"], self.max_media_bytes)

    async def close(self) -> None:
        pass  # the account is closed by the SMS channel or the registry
