"""What SMS and WhatsApp share: reading and verifying Twilio's signed form
webhooks, the empty TwiML acknowledgement, status callbacks, the async REST
client, error mapping and authenticated media downloads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import phonenumbers
from multidict import MultiDict
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.values import Inbound, Rejected, SendError, Sent, StatusUpdate, WebhookRequest, WebhookResult
from channels.base import BuildContext

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Twilio-Signature"
FORM = "application/x-www-form-urlencoded"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
STATUS_PATH = "twilio/status"
RETRYABLE_CODES = {20429, 20500, 20503, 30001}
PERMANENT = {
    21610: "unsubscribed at the carrier (STOP)",
    21211: "invalid number",
    21614: "not a mobile number",
    21408: "region not enabled",
    63016: "outside the WhatsApp 24-hour window",
    63018: "WhatsApp rate exceeded",
}
DELIVERY_ERRORS = {  # reported later, in status callbacks
    21610: "unsubscribed at the carrier (STOP)",
    63016: "outside the WhatsApp 24-hour window",
    30003: "unreachable handset",
    30005: "unknown or inactive number",
    30006: "landline or unreachable carrier",
    30007: "filtered as spam by the carrier",
}
OPTED_OUT = 21610


def status_update(form: Mapping[str, Any]) -> StatusUpdate | None:
    """A status callback (MessageSid, MessageStatus, ErrorCode) in our terms; None if incomplete."""
    sid, status = form.get("MessageSid"), form.get("MessageStatus")
    if not sid or not status:
        return None
    raw = str(form.get("ErrorCode") or "").strip()
    code = int(raw) if raw.isdigit() else None
    error = None if not raw else f"{raw} {DELIVERY_ERRORS.get(code or 0, 'delivery failed')}"
    return StatusUpdate(str(sid), str(status), error, opted_out=code == OPTED_OUT)


def acknowledge(**actions: Any) -> WebhookResult:
    """Twilio's acknowledgement: 200 with empty TwiML (replies go out through the REST API)."""
    return WebhookResult(status=200, body=EMPTY_TWIML, content_type="text/xml", **actions)


def parse_form(body: bytes, charset: str | None) -> MultiDict[str]:
    """A form-encoded body with every repeated key kept (Twilio signs them all);
    ``Rejected`` (400) if it does not decode."""
    encoding = charset or "utf-8"
    try:
        text = body.decode(encoding)
        return MultiDict(parse_qsl(text, keep_blank_values=True, encoding=encoding, errors="strict"))
    except (UnicodeDecodeError, LookupError, ValueError):
        raise Rejected(400, "the form does not decode in its charset") from None


def has_required(form: Mapping[str, Any]) -> bool:
    """An inbound message webhook names the message and its sender."""
    return bool(form.get("MessageSid") and form.get("From"))


def e164(number: str) -> str:
    """A phone number in E.164; numbers that do not parse are kept as given."""
    number = number.strip()
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number
    if not phonenumbers.is_possible_number(parsed):
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


class TwilioAccount:
    """One Twilio account: credentials, validator, a lazily built async client."""

    def __init__(self, account_sid: str, auth_token: str, api_base_url: str, public_url: str) -> None:
        self.account_sid = account_sid
        self._token = auth_token
        self.api_base_url = api_base_url.rstrip("/")
        self.public_url = public_url.rstrip("/")
        self.validator = RequestValidator(auth_token)
        self._client: Client | None = None
        self._http: AsyncTwilioHttpClient | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:  # never show the token
        return "TwilioAccount()"

    def verify(self, path_qs: str, params: Mapping[str, Any], signature: str | None) -> bool:
        """Check X-Twilio-Signature against the public URL Twilio called."""
        if not signature:
            return False
        return bool(self.validator.validate(self.public_url + path_qs, params, signature))

    @property
    def status_callback(self) -> str:
        return f"{self.public_url}/webhooks/{STATUS_PATH}"

    async def signed_form(self, request: WebhookRequest) -> MultiDict[str]:
        """The form of a genuine Twilio request; ``Rejected`` with 415, 403 or 400 otherwise."""
        if request.content_type != FORM:
            raise Rejected(415, "form-encoded body expected")
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            raise Rejected(403, "invalid signature")
        form = parse_form(await request.body(), request.charset)
        if not self.verify(request.path_qs, form, signature):
            raise Rejected(403, "invalid signature")
        return form

    async def inbound_message(
        self,
        request: WebhookRequest,
        parse: Callable[[Mapping[str, Any]], Inbound],
        belongs: Callable[[str], bool],
        wrong: str,
    ) -> WebhookResult:
        """An inbound message webhook: signed, complete, and sent by the kind of sender the
        route is for (``belongs(From)``; else 400 ``wrong``) — then parsed and acknowledged."""
        try:
            form = await self.signed_form(request)
        except Rejected as exc:
            return WebhookResult.reject(exc.status, exc.message)
        if not has_required(form):
            return WebhookResult.reject(400, "MessageSid and From are required")
        if not belongs(str(form["From"])):
            return WebhookResult.reject(400, wrong)
        return acknowledge(inbound=(parse(form),))

    async def handle_status(self, request: WebhookRequest) -> WebhookResult:
        """A status callback (for SMS and WhatsApp alike) as a delivery report."""
        try:
            form = await self.signed_form(request)
        except Rejected as exc:
            return WebhookResult.reject(exc.status, exc.message)
        report = status_update(form)
        if report is None:
            return WebhookResult.reject(400, "MessageSid and MessageStatus are required")
        return acknowledge(statuses=(report,))

    async def client(self) -> Client:
        async with self._lock:
            if self._client is None:
                self._http = AsyncTwilioHttpClient()  # built inside the running loop
                self._client = Client(self.account_sid, self._token, http_client=self._http)
                self._client.api.base_url = self.api_base_url
        return self._client

    async def create_message(self, **kwargs: Any) -> Sent:
        client = await self.client()
        params = {k: v for k, v in kwargs.items() if v is not None}
        try:
            message = await client.messages.create_async(status_callback=self.status_callback, **params)
        except TwilioRestException as exc:
            raise _send_error(exc) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise SendError(f"network: {type(exc).__name__}", permanent=False) from None
        segments = int(message.num_segments) if str(message.num_segments or "").isdigit() else None
        return Sent(provider_id=message.sid, segments=segments)

    async def download(self, url: str, max_bytes: int) -> tuple[str, bytes] | None:
        """Fetch a MediaUrl with the account's credentials (as Twilio requires)."""
        auth = aiohttp.BasicAuth(self.account_sid, self._token)
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
                async with session.get(url, auth=auth) as resp:
                    if resp.status != 200:
                        log.warning("media download failed with HTTP %s", resp.status)
                        return None
                    mime = resp.headers.get("Content-Type", "")
                    data = await resp.content.read(max_bytes + 1)
        except (TimeoutError, aiohttp.ClientError) as exc:
            log.warning("media download failed: %s", type(exc).__name__)
            return None
        return mime, data

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
            self._client = None


def _send_error(exc: TwilioRestException) -> SendError:
    code = exc.code
    if code in PERMANENT:
        return SendError(
            f"{code} {PERMANENT[code]}", permanent=True, opted_out=code == OPTED_OUT, unreachable=code in (21211, 21614)
        )
    if exc.status == 429 or code in RETRYABLE_CODES or (exc.status or 0) >= 500:
        return SendError(f"{code or exc.status} temporary", permanent=False)
    return SendError(f"{code or exc.status} rejected", permanent=True)


def shared_account(ctx: BuildContext) -> TwilioAccount | None:
    """The one Twilio account SMS and WhatsApp share, if configured (closed once, by the registry)."""
    settings = ctx.settings
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        return None
    account = ctx.shared.get(TwilioAccount.__name__)
    if account is None:
        account = TwilioAccount(
            settings.twilio_account_sid,
            settings.twilio_auth_token.get_secret_value(),
            settings.twilio_api_base_url,
            settings.base_url,
        )
        ctx.shared[TwilioAccount.__name__] = account
        ctx.closers.append(account.close)
    return account
