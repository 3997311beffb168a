"""What SMS and WhatsApp share: reading and verifying Twilio's signed form
webhooks, what an inbound message holds (text, a photo or voice note, an
album, something we cannot use), the empty TwiML acknowledgement, status
callbacks, the async REST client, error mapping and authenticated media
downloads."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlparse

import aiohttp
import phonenumbers
from multidict import MultiDict
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.request_validator import RequestValidator, add_port, remove_port
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
from channels import inputs
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
    code = int(raw) if ERROR_CODE.fullmatch(raw) else None
    error = None if not raw else f"{raw} {DELIVERY_ERRORS.get(code or 0, 'delivery failed')}"
    return StatusUpdate(str(sid), str(status), error, opted_out=code == OPTED_OUT)


# The shapes of Twilio's fields (every pattern is matched entirely: fullmatch).
MESSAGE_SID = re.compile(r"(?:SM|MM)[0-9a-f]{32}")
NUMBER = re.compile(r"(?:whatsapp:)?\+?[0-9]{3,15}")  # our own number (To): E.164 or a short code
WA_ID = re.compile(r"[0-9]{1,15}")
COUNT = re.compile(r"[0-9]{1,3}")
ERROR_CODE = re.compile(r"[0-9]{1,6}")
MESSAGE_STATUS = re.compile(r"[a-z_-]{1,32}")
MESSAGE_TYPE = re.compile(r"[a-z_-]{0,32}")
MEDIA_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+-]{1,64}/[A-Za-z0-9!#$&^_.+-]{1,64}(?:\s*;[ -~]{0,100})?")
MAX_URL = 2048
SHORT_TEXT = {"ProfileName": 256, "ButtonText": 1024, "ButtonPayload": 1024}
SINGLE = ("MessageSid", "AccountSid", "From", "To", "Body", "NumMedia", "MessageStatus", "ErrorCode", "ButtonPayload")


def _one(form: MultiDict[str], key: str) -> str | None:
    """The field's only value (None if absent); a field Twilio sends once, sent twice, is refused."""
    values = form.getall(key, [])
    if len(values) > 1:
        raise Rejected(400, f"{key} given more than once")
    return values[0] if values else None


def _shaped(form: MultiDict[str], key: str, pattern: re.Pattern[str], required: bool = False) -> str | None:
    value = _one(form, key)
    if value is None or (value == "" and not required):
        if required:
            raise Rejected(400, f"{key} is required")
        return None
    if not pattern.fullmatch(value):
        raise Rejected(400, f"{key} has not the shape Twilio gives it")
    return value


def phone_number(value: str) -> str:
    """A resident's number in E.164 (``+4915…``); ``Rejected`` (400) for anything else."""
    if not inputs.E164.fullmatch(value):
        raise Rejected(400, "From is not a phone number in E.164")
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise Rejected(400, "From is not a phone number in E.164") from None
    if not phonenumbers.is_possible_number(parsed):
        raise Rejected(400, "From is not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def check_ids(form: MultiDict[str], account_sid: str) -> str:
    """MessageSid (``SM``/``MM`` + 32 hex; the aliases SmsSid/SmsMessageSid, when sent, the same)
    and AccountSid (ours). A signed form whose parameter boundaries were shifted (Twilio signs the
    concatenation) fails here: its MessageSid or AccountSid no longer has its shape."""
    sid = _shaped(form, "MessageSid", MESSAGE_SID, required=True)
    assert sid is not None
    for alias in ("SmsSid", "SmsMessageSid"):
        if _one(form, alias) not in (None, sid):
            raise Rejected(400, f"{alias} differs from MessageSid")
    if _one(form, "AccountSid") != account_sid:
        raise Rejected(400, "AccountSid is not this account")
    return sid


def check_message(form: MultiDict[str], account_sid: str) -> None:
    """Every field of an inbound message we read, by shape (``Rejected`` 400 names the first wrong one)."""
    for key in SINGLE:
        _one(form, key)
    check_ids(form, account_sid)
    if not _one(form, "From"):
        raise Rejected(400, "MessageSid and From are required")
    _shaped(form, "To", NUMBER, required=True)
    _shaped(form, "WaId", WA_ID)
    _shaped(form, "NumSegments", COUNT)
    _shaped(form, "MessageType", MESSAGE_TYPE)
    count = _shaped(form, "NumMedia", COUNT)
    if count is not None and int(count) > MAX_ATTACHMENTS:
        raise Rejected(400, f"NumMedia is more than {MAX_ATTACHMENTS}")
    for i in range(MAX_ATTACHMENTS):
        url = _one(form, f"MediaUrl{i}")
        if url:
            parts = urlparse(url) if len(url) <= MAX_URL else None
            if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
                raise Rejected(400, f"MediaUrl{i} is not a URL")
        _shaped(form, f"MediaContentType{i}", MEDIA_TYPE)
    inputs.text(_one(form, "Body"), "Body", inputs.MAX_TEXT)
    for key, limit in SHORT_TEXT.items():
        inputs.text(_one(form, key), key, limit)


def check_status(form: MultiDict[str], account_sid: str) -> None:
    """A status callback's fields by shape: ids as for messages, a status word, a short ErrorCode."""
    if not form.get("MessageSid") or not form.get("MessageStatus"):
        raise Rejected(400, "MessageSid and MessageStatus are required")
    check_ids(form, account_sid)
    _shaped(form, "MessageStatus", MESSAGE_STATUS, required=True)
    _shaped(form, "ErrorCode", ERROR_CODE)


def body_text(form: Mapping[str, Any], key: str = "Body") -> str:
    """A checked free-text field, cleaned of NUL bytes (see :mod:`channels.inputs`)."""
    return inputs.clean_text(str(form.get(key) or ""))


def acknowledge(**actions: Any) -> WebhookResult:
    """Twilio's acknowledgement: 200 with empty TwiML (replies go out through the REST API)."""
    return WebhookResult(status=200, body=EMPTY_TWIML, content_type="text/xml", **actions)


MAX_FIELDS = 200  # Twilio sends a few dozen; more is not Twilio
UTF8 = frozenset({"utf-8", "utf8"})


def raw_form(body: bytes) -> list[tuple[bytes, bytes]]:
    """The form's (name, value) pairs as bytes, percent-decoded but not decoded as text: what
    the signature covers, read before anything is decoded; ``Rejected`` (400) if it is no form."""
    try:
        text = body.decode("latin-1")  # one character per byte: nothing can fail here
        pairs = parse_qsl(text, keep_blank_values=True, encoding="latin-1", max_num_fields=MAX_FIELDS)
    except ValueError:
        raise Rejected(400, "not a form (or too many fields)") from None
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in pairs]


def decode_form(pairs: list[tuple[bytes, bytes]], charset: str | None) -> MultiDict[str]:
    """The verified form as text, every repeated key kept; ``Rejected`` (415/400) unless UTF-8."""
    if charset is not None and charset.lower() not in UTF8:
        raise Rejected(415, "a UTF-8 form is expected")
    try:
        return MultiDict((k.decode("utf-8"), v.decode("utf-8")) for k, v in pairs)
    except UnicodeDecodeError:
        raise Rejected(400, "the form is not valid UTF-8") from None


def parse_form(body: bytes, charset: str | None) -> MultiDict[str]:
    """A form-encoded body with every repeated key kept (Twilio signs them all);
    ``Rejected`` (400/415) if it does not decode."""
    return decode_form(raw_form(body), charset)


def signature_of(token: bytes, url: str, pairs: list[tuple[bytes, bytes]]) -> bytes:
    """Twilio's X-Twilio-Signature over the URL and the sorted parameters, computed on bytes
    (UTF-8 sorts as its code points do, so this is ``RequestValidator.compute_signature`` for
    every form that decodes, and needs no decoding for those that do not)."""
    values: dict[bytes, set[bytes]] = {}
    for key, value in pairs:
        values.setdefault(key, set()).add(value)
    signed = url.encode("utf-8") + b"".join(key + value for key in sorted(values) for value in sorted(values[key]))
    return base64.b64encode(hmac.new(token, signed, hashlib.sha1).digest())


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
    body = body_text(form)
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
    """A resident's number in E.164; ``Rejected`` (400) if it is none (see :func:`phone_number`)."""
    return phone_number(number)


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

    def verify_raw(self, path_qs: str, pairs: list[tuple[bytes, bytes]], signature: str) -> bool:
        """Check X-Twilio-Signature over the undecoded form (with and without the default
        port, as the SDK's validator does), in constant time."""
        given = signature.strip().encode("utf-8", "replace")
        uri = urlparse(self.public_url + path_qs)
        return any(
            hmac.compare_digest(signature_of(self._token.encode("utf-8"), url, pairs), given)
            for url in {remove_port(uri), add_port(uri)}
        )

    @property
    def status_callback(self) -> str:
        return f"{self.public_url}/webhooks/{STATUS_PATH}"

    async def signed_form(self, request: WebhookRequest) -> MultiDict[str]:
        """The form of a genuine Twilio request; ``Rejected`` with 415, 403 or 400 otherwise.
        The signature is checked on the raw form before anything is decoded, so a forged
        request never reaches the parser."""
        if request.content_type != FORM:
            raise Rejected(415, "form-encoded body expected")
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            raise Rejected(403, "invalid signature")
        pairs = raw_form(await request.body())  # the signature first: nothing is decoded before it holds
        if not self.verify_raw(request.path_qs, pairs, signature):
            raise Rejected(403, "invalid signature")
        return decode_form(pairs, request.charset)

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
            if not (form.get("MessageSid") and form.get("From")):
                raise Rejected(400, "MessageSid and From are required")
            check_message(form, self.account_sid)
            if not belongs(form):
                raise Rejected(400, wrong)
            inbound = parse(form)  # may refuse a From that is no phone number
        except Rejected as exc:
            return WebhookResult.reject(exc.status, exc.message)
        return acknowledge(inbound=(inbound,))

    async def handle_status(self, request: WebhookRequest) -> WebhookResult:
        """A status callback (for SMS and WhatsApp alike) as a delivery report."""
        try:
            form = await self.signed_form(request)
            check_status(form, self.account_sid)
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

    def own_host(self, url: str) -> bool:
        """``url`` is on Twilio's API host (``TWILIO_API_BASE_URL``: scheme, host and port alike)."""
        try:
            got, ours = urlparse(url), urlparse(self.api_base_url)
            return (got.scheme, got.hostname, got.port) == (ours.scheme, ours.hostname, ours.port) and not (
                got.username or got.password
            )
        except ValueError:
            return False

    async def download(self, url: str, max_bytes: int) -> tuple[str, bytes] | None:
        """Fetch a MediaUrl. The account's credentials (which Twilio requires) go only to Twilio's
        API host: a URL on any other host is refused, not fetched — a signed webhook names Twilio's
        host, so another one means a misconfigured or compromised sender, and fetching it even
        without credentials would let a webhook make the bot request any address (internal ones
        too). Twilio answers a media request with a redirect to its storage: that is followed
        without the credentials."""
        if not self.own_host(url):
            log.warning("media not fetched: its URL is not on Twilio's API host")
            return None
        basic = base64.b64encode(f"{self.account_sid}:{self._token}".encode()).decode("ascii")
        auth = {"Authorization": f"Basic {basic}"}
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
                async with session.get(url, headers=auth, allow_redirects=False) as resp:
                    location = resp.headers.get("Location") if resp.status in (301, 302, 303, 307, 308) else None
                    if location is None:
                        return await _media(resp, max_bytes)
                target = urljoin(str(resp.url), location)
                if self.own_host(target):  # still Twilio's API host: the credentials may go along
                    async with session.get(target, headers=auth, allow_redirects=False) as again:
                        return await _media(again, max_bytes)
                async with session.get(target, allow_redirects=True, max_redirects=3) as stored:
                    return await _media(stored, max_bytes)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            log.warning("media download failed: %s", type(exc).__name__)
            return None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
            self._client = None


async def _media(resp: aiohttp.ClientResponse, max_bytes: int) -> tuple[str, bytes] | None:
    if resp.status != 200:
        log.warning("media download failed with HTTP %s", resp.status)
        return None
    return resp.headers.get("Content-Type", ""), await resp.content.read(max_bytes + 1)


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
