"""SMS through Twilio: numbered menus for basic phones, GSM-7 where possible."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.values import Capabilities, Inbound, Outgoing, Sent, WebhookRequest, WebhookResult
from channels import sms_text
from channels.base import PHONE, BuildContext, ChannelSpec, EntryPoint
from channels.twilio_base import STATUS_PATH, TwilioAccount, e164, is_whatsapp, read_content, shared_account

NAME = "sms"
WEBHOOK_PATH = "twilio/sms"


def split(text: str) -> list[str]:
    """GSM-7 where the text allows it, in parts of at most six segments, at sentence boundaries."""
    return sms_text.split(sms_text.prefer_gsm7(text))


def segments(part: str) -> int:
    return sms_text.segments(part)[1]


CAPABILITIES = Capabilities(
    buttons=False,
    max_text=1600,
    media=(),
    encoding="gsm7",
    compact=True,
    split=split,
    units=segments,
    rate=1.0,
    rate_unit="segment",
)


class SmsChannel:
    name = NAME
    capabilities = CAPABILITIES

    def __init__(
        self, account: TwilioAccount, sender: str | None, messaging_service_sid: str | None, max_media_bytes: int
    ) -> None:
        self.account = account
        self.sender = sender
        self.messaging_service_sid = messaging_service_sid
        self.max_media_bytes = max_media_bytes
        self.webhooks = {WEBHOOK_PATH: self.handle_webhook, STATUS_PATH: account.handle_status}

    def __repr__(self) -> str:
        return "SmsChannel()"

    async def handle_webhook(self, request: WebhookRequest) -> WebhookResult:
        return await self.account.inbound_message(
            request,
            self.parse,
            belongs=lambda form: not (is_whatsapp(form.get("From")) or is_whatsapp(form.get("To"))),
            wrong="a WhatsApp message belongs on the WhatsApp route",
        )

    def parse(self, form: Mapping[str, Any]) -> Inbound:
        content = read_content(form)
        return Inbound(
            channel=NAME,
            address=e164(str(form["From"])),
            provider_id=str(form["MessageSid"]),
            text=content.text,
            media=content.media,
            extra=content.extra,
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
        pass  # the shared account is closed by the registry


def build(ctx: BuildContext) -> SmsChannel | None:
    settings = ctx.settings
    if not (settings.twilio_sms_from or settings.twilio_messaging_service_sid):
        return None
    account = shared_account(ctx)
    if account is None:
        return None
    return SmsChannel(account, settings.twilio_sms_from, settings.twilio_messaging_service_sid, ctx.max_media_bytes)


def entry_point(settings: Any, payload: str, keyword: str) -> EntryPoint | None:
    """An SMSTO: code (a phone camera opens a ready SMS) with the keyword (needs TWILIO_SMS_FROM)."""
    number = (settings.twilio_sms_from or "").strip()
    if not PHONE.fullmatch(number):
        return None
    return EntryPoint(NAME, f"SMSTO:{number}:{keyword}", None, keyword, number)


SPEC = ChannelSpec(
    NAME,
    CAPABILITIES,
    build,
    requires="TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_SMS_FROM",
    entry_point=entry_point,
)
