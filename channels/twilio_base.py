"""What SMS and WhatsApp share: reading and verifying Twilio's signed form
webhooks, what an inbound message holds (text, a photo or voice note, an
album, something we cannot use), the empty TwiML acknowledgement, status
callbacks, the async REST client, error mapping and authenticated media
downloads."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import phonenumbers
from multidict import MultiDict
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from bot.values import (
    Inbound,
    Media,
    Rejected,
    SendError,
    Sent,
    StatusUpdate,
    WebhookRequest,
    WebhookResult,
    media_kind,
)
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


# WhatsApp's ``MessageType`` values we cannot use -> the kind the engine is told (``extra["unsupported"]``)
UNSUPPORTED_TYPES = {
    "sticker": "sticker",  # arrives as image/webp, but is not a photo of anything
    "location": "location",  # Latitude/Longitude/Address/Label: never stored
    "contacts": "contact",
    "contact": "contact",
    "vcard": "contact",
    "video": "other",
    "document": "other",
}
NO_CAPTION = ("sticker", "location", "contact")  # nothing the resident typed comes with these
TAKEN_TYPES = frozenset({"", "text", "image", "audio", "voice", "button", "interactive"})
CONTACT_MIMES = frozenset({"text/vcard", "text/x-vcard", "text/directory"})
MAX_ATTACHMENTS = 10  # Twilio's limit per MMS


@dataclass(frozen=True)
class Content:
    """What an inbound message holds, in our terms (see :func:`read_content`)."""

    text: str | None
    media: Media | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def attachments(form: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(MediaUrlN, MediaContentTypeN) of every attachment, in order."""
    try:
        count = int(form.get("NumMedia") or 0)
    except ValueError:
        count = 0
    found = []
    for i in range(min(max(count, 0), MAX_ATTACHMENTS)):
        url = form.get(f"MediaUrl{i}")
        if url:
            found.append((str(url), str(form.get(f"MediaContentType{i}") or "").split(";")[0].strip().lower()))
    return found


def read_content(form: Mapping[str, Any]) -> Content:
    """The text, the photo or voice note (still to be fetched) and the extras of a message.

    - WhatsApp's ``MessageType`` first: a sticker, a location, a contact card → no text, no
      media, ``extra["unsupported"]`` ("sticker", "location", "contact"; coordinates and
      addresses are not kept); a video or document → "other", or its caption as text.
    - A photo or voice note: the first one is the message's media (as its ``source`` the URL
      and type). With several attachments (an MMS) the message also gets
      ``extra["album"] = MessageSid`` and, if there are further photos,
      ``extra["more_media"]``: their sources in the same shape, fetched with ``fetch_media``.
    - An image or audio file of a type we do not take: ``Media(kind="unsupported")``.
    - Any other attachment (video, vCard, PDF …): its caption as text, else "contact"/"other".
    - A WhatsApp message type we do not know, without text: "other".
    """
    body = str(form.get("Body") or "")
    message_type = str(form.get("MessageType") or "").strip().lower()
    files = attachments(form)
    kind = UNSUPPORTED_TYPES.get(message_type)
    if kind is None and not message_type and form.get("Latitude") and form.get("Longitude"):
        kind = "location"
    if kind in NO_CAPTION:
        return Content(None, extra={"unsupported": kind})
    usable = [(url, mime, taken) for url, mime in files if (taken := media_kind(mime))] if kind is None else []
    if usable:
        url, mime, taken = usable[0]
        extra: dict[str, Any] = {}
        if taken == "photo" and len(files) > 1:
            extra["album"] = str(form["MessageSid"])
            more = [{"url": u, "mime": m} for u, m, k in usable[1:] if k == "photo"]
            if more:
                extra["more_media"] = more
        return Content(body, Media(kind=taken, ref="", mime=mime, size=0, source={"url": url, "mime": mime}), extra)
    if kind is None and files and files[0][1].startswith(("image/", "audio/")):
        return Content(body, Media(kind="unsupported", ref="", mime=files[0][1]))  # a file we cannot open
    if body.strip() and (kind or files):
        return Content(body)  # the caption of a video or document is what the resident said
    if kind in (None, "other") and files:
        kind = "contact" if any(mime in CONTACT_MIMES for _, mime in files) else "other"
    if kind is None and message_type not in TAKEN_TYPES and not body.strip():
        kind = "other"
    if kind is not None:
        return Content(None, extra={"unsupported": kind})
    return Content(body)


def is_whatsapp(address: Any) -> bool:
    """A WhatsApp address (``whatsapp:+49…``) as Twilio writes From and To."""
    return str(address or "").strip().lower().startswith("whatsapp:")


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
        belongs: Callable[[Mapping[str, Any]], bool],
        wrong: str,
    ) -> WebhookResult:
        """An inbound message webhook: signed for this very URL (a form signed for another
        route fails the signature: 403), complete, and of the kind the route is for
        (``belongs(form)``; else 400 ``wrong``) — then parsed and acknowledged."""
        try:
            form = await self.signed_form(request)
        except Rejected as exc:
            return WebhookResult.reject(exc.status, exc.message)
        if not has_required(form):
            return WebhookResult.reject(400, "MessageSid and From are required")
        if not belongs(form):
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
