"""WhatsApp through Twilio: free text within 24 hours of the resident's last
message, an approved template (Content SID) outside it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from bot.values import Capabilities, Inbound, Outgoing, Sent, WebhookRequest, WebhookResult
from channels import inputs
from channels.base import PHONE, BuildContext, ChannelSpec, EntryPoint
from channels.twilio_base import STATUS_PATH, TwilioAccount, e164, is_whatsapp, read_content, shared_account

NAME = "whatsapp"
WEBHOOK_PATH = "twilio/whatsapp"
PREFIX = "whatsapp:"


def approved_templates(flows: Any) -> Mapping[str, str]:
    """Language -> Content SID of the approved template (flows/whatsapp.yaml)."""
    return flows.whatsapp_templates


CAPABILITIES = Capabilities(
    buttons=False,
    max_text=1600,
    media=("voice", "photo"),
    rate=80.0,
    reply_window=timedelta(hours=24),
    templates=approved_templates,
    window_label="the WhatsApp 24-hour window",
)


class WhatsAppChannel:
    name = NAME
    capabilities = CAPABILITIES

    def __init__(self, account: TwilioAccount, sender: str, max_media_bytes: int) -> None:
        self.account = account
        self.sender = sender if sender.startswith(PREFIX) else PREFIX + sender
        self.max_media_bytes = max_media_bytes
        self.webhooks = {WEBHOOK_PATH: self.handle_webhook, STATUS_PATH: account.handle_status}

    def __repr__(self) -> str:
        return "WhatsAppChannel()"

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResult:
        return await self.account.inbound_message(
            request,
            self.parse,
            belongs=lambda form: is_whatsapp(form.get("From")) and is_whatsapp(form.get("To")),
            wrong="not a WhatsApp message (From and To need whatsapp:)",
        )

    def parse(self, form: Mapping[str, Any]) -> Inbound:
        raw = str(form["From"])
        number = raw[len(PREFIX) :] if raw.startswith(PREFIX) else raw
        if not number.startswith("+") and form.get("WaId"):
            number = "+" + str(form["WaId"])  # checked: digits only
        payload = inputs.clean_text(str(form.get("ButtonPayload") or ""))
        content = read_content(form)  # MessageType: a sticker is not a photo, a location not an answer
        return Inbound(
            channel=NAME,
            address=e164(number),
            provider_id=str(form["MessageSid"]),
            text=None if payload else content.text,
            choice=payload or None,
            media=content.media,
            extra={} if payload else content.extra,
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
        pass  # the shared account is closed by the registry


def build(ctx: BuildContext) -> WhatsAppChannel | None:
    account = shared_account(ctx)
    if account is None or not ctx.settings.twilio_whatsapp_from:
        return None
    return WhatsAppChannel(account, ctx.settings.twilio_whatsapp_from, ctx.max_media_bytes)


def entry_point(settings: Any, payload: str, keyword: str) -> EntryPoint | None:
    """A wa.me link with the keyword prefilled (needs TWILIO_WHATSAPP_FROM)."""
    number = (settings.twilio_whatsapp_from or "").strip().removeprefix("whatsapp:").strip()
    if not PHONE.fullmatch(number):
        return None
    link = f"https://wa.me/{number.lstrip('+')}?text={quote(keyword)}"
    return EntryPoint(NAME, link, link, keyword, number)


SPEC = ChannelSpec(
    NAME,
    CAPABILITIES,
    build,
    requires="TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_WHATSAPP_FROM",
    entry_point=entry_point,
)
