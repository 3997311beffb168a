"""Loopback fake of Twilio's Messages API (SMS and WhatsApp) for tests.

Point the *real* twilio SDK at it (no patching)::

    monkeypatch.delenv("TWILIO_REGION", raising=False)   # else the SDK
    monkeypatch.delenv("TWILIO_EDGE", raising=False)     # rewrites the host
    async with FakeTwilio() as tw:
        http = AsyncTwilioHttpClient()      # build inside the running loop
        client = Client(tw.account_sid, tw.auth_token, http_client=http)
        client.api.base_url = tw.root       # Domain.absolute_url() joins base_url
                                            # + "2010-04-01/Accounts/{sid}/Messages.json"
        msg = await client.messages.create_async(to="+4917…", from_="+4930…", body="Hi")
        await http.close()

``client.api`` is the ``Api`` domain; ``client.messages`` →
``client.api.v2010.account.messages`` resolves URLs through that domain on every
request, so setting ``base_url`` after construction is enough (the SDK only
rewrites the host when ``edge``/``region`` or ``TWILIO_EDGE``/``TWILIO_REGION``
are set).

The fake checks HTTP basic auth (account SID + auth token), records
``.messages`` and answers with realistic Message resources; failures can be
scripted. Media is served at ``GET {root}/media/{path}`` behind the same basic
auth. Module helpers build inbound webhook / status-callback form params and
their ``X-Twilio-Signature``.
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from types import TracebackType
from typing import Any

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "FakeTwilio",
    "count_segments",
    "inbound_sms_params",
    "inbound_whatsapp_location_params",
    "inbound_whatsapp_params",
    "new_sid",
    "sign",
    "status_callback_params",
]

Params = dict[str, Any]

DEFAULT_ACCOUNT_SID = "AC" + "0" * 31 + "1"
DEFAULT_AUTH_TOKEN = "test_auth_token_0123456789abcdef"
API_VERSION = "2010-04-01"

ERROR_MESSAGES: dict[int, str] = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    21211: "Invalid 'To' Phone Number",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    30007: "Message filtered",
    63016: (
        "Failed to send freeform message because you are outside the allowed window. "
        "If you are using WhatsApp, please use a Message Template."
    ),
    63018: "Rate limit exceeded for Channel",
}

# GSM 03.38 default alphabet and extension table (extension chars cost two septets).
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")


def count_segments(body: str) -> int:
    """SMS segments for ``body``: GSM-7 160/153 septets, otherwise UCS-2 70/67 units."""
    if not body:
        return 1
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENDED for c in body):
        units = sum(2 if c in _GSM7_EXTENDED else 1 for c in body)
        single, multi = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2  # astral chars (emoji) take two units
        single, multi = 70, 67
    return 1 if units <= single else math.ceil(units / multi)


def new_sid(prefix: str = "SM") -> str:
    """A Twilio-style SID: two-letter prefix + 32 lowercase hex chars."""
    return prefix + secrets.token_hex(16)


def _rfc2822(ts: float | None = None) -> str:
    return formatdate(ts if ts is not None else time.time(), usegmt=False).replace("-0000", "+0000")


@dataclass
class _Failure:
    status: int
    code: int
    message: str
    remaining: int
    retry_after: int | None


@dataclass
class _Media:
    content: bytes
    content_type: str


class FakeTwilio:
    """aiohttp loopback server for ``/2010-04-01/Accounts/{sid}/Messages.json``.

    Args:
        account_sid, auth_token: the credentials basic auth must match (else 401/20003).
        rate_limit_per_s: if set, creating more messages than this per second
            answers 429/20429 with ``Retry-After`` and counts a violation.
    """

    def __init__(
        self,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        *,
        rate_limit_per_s: float | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.rate_limit_per_s = rate_limit_per_s
        #: Params of every *accepted* message create request, in order.
        self.messages: list[Params] = []
        #: Every create request: ``(params, http_status)``, including rejected ones.
        self.requests: list[tuple[Params, int]] = []
        #: Message resources by SID (as returned to the client).
        self.resources: dict[str, Params] = {}
        #: Number of requests rejected by the rate limit.
        self.violations = 0
        self._failures: deque[_Failure] = deque()
        self._failing_recipients: dict[str, _Failure] = {}
        self._media: dict[str, _Media] = {}
        self._redirects: dict[str, str] = {}
        #: Paths of every media download request (``GET {root}/media/{path}``), in order.
        self.media_requests: list[str] = []
        self._sent_at: deque[float] = deque()
        self._runner: web.AppRunner | None = None
        self.root = ""

    # ------------------------------------------------------------ lifecycle

    def make_app(self) -> web.Application:
        """Build the aiohttp application (``start()`` serves it on loopback)."""
        app = web.Application()
        base = f"/{API_VERSION}/Accounts/{{account_sid}}"
        app.router.add_post(f"{base}/Messages.json", self._create_message)
        app.router.add_get(f"{base}/Messages/{{sid}}.json", self._fetch_message)
        app.router.add_get("/media/{path:.+}", self._get_media)
        return app

    async def start(self) -> None:
        """Serve on ``127.0.0.1`` with a free port; sets :attr:`root`."""
        self._runner = web.AppRunner(self.make_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.root = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTwilio:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ------------------------------------------------------------ scripting

    def fail_next(
        self,
        status: int,
        code: int,
        message: str | None = None,
        n: int = 1,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next ``n`` message creates with Twilio error ``code``.

        E.g. ``(400, 21610)`` unsubscribed, ``(400, 21211)`` invalid To,
        ``(400, 63016)`` outside the WhatsApp window, ``(429, 20429,
        retry_after=3)`` (sets ``Retry-After``), ``(500, 20500)``.
        """
        text = message or ERROR_MESSAGES.get(code, f"Error {code}")
        self._failures.append(_Failure(status, code, text, n, retry_after))

    def fail_to(self, number: str, status: int, code: int, message: str | None = None) -> None:
        """Permanently fail every message to ``number`` (exact ``To``, e.g. ``whatsapp:+49…``)."""
        text = message or ERROR_MESSAGES.get(code, f"Error {code}")
        self._failing_recipients[number] = _Failure(status, code, text, -1, None)

    def clear_failures(self) -> None:
        """Drop scripted and per-recipient failures."""
        self._failures.clear()
        self._failing_recipients.clear()

    def add_media(self, path: str, content: bytes, content_type: str) -> str:
        """Serve ``content`` at ``{root}/media/{path}`` (basic auth); returns that URL."""
        self._media[path.lstrip("/")] = _Media(content, content_type)
        return self.media_url(path)

    def add_media_redirect(self, path: str, location: str) -> str:
        """Answer ``{root}/media/{path}`` (behind basic auth) with ``302 Location: location``, as
        Twilio answers a media request with a redirect to its storage; returns the media URL."""
        self._redirects[path.lstrip("/")] = location
        return self.media_url(path)

    def media_url(self, path: str) -> str:
        """Absolute URL of media added with :meth:`add_media`."""
        return f"{self.root}/media/{path.lstrip('/')}"

    @property
    def auth_headers(self) -> dict[str, str]:
        """``Authorization`` header for raw HTTP requests (e.g. fetching media)."""
        token = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def sent_to(self, to: str) -> list[Params]:
        """Accepted message params whose ``To`` equals ``to``."""
        return [m for m in self.messages if m.get("To") == to]

    async def send_status_callback(self, message_sid: str, status: str, error_code: int | None = None) -> int:
        """POST a signed status callback to the message's ``StatusCallback``; returns HTTP status."""
        resource = self.resources[message_sid]
        url = resource["_status_callback"]
        if not url:
            raise ValueError(f"message {message_sid} has no StatusCallback")
        params = status_callback_params(
            message_sid,
            status,
            error_code,
            to=resource["to"],
            from_=resource["from"] or "",
            account_sid=self.account_sid,
        )
        headers = {"X-Twilio-Signature": sign(self.auth_token, url, params)}
        async with aiohttp.ClientSession() as session:
            async with session.post(url, data=params, headers=headers) as response:
                return response.status

    # ------------------------------------------------------------ HTTP

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(f"{user}:{password}".encode(), f"{self.account_sid}:{self.auth_token}".encode())

    def _rate_limited(self, now: float) -> int | None:
        if not self.rate_limit_per_s:
            return None
        window = max(1.0, 1.0 / self.rate_limit_per_s)
        limit = max(1, round(self.rate_limit_per_s * window))
        while self._sent_at and now - self._sent_at[0] >= window:
            self._sent_at.popleft()
        if len(self._sent_at) >= limit:
            return max(1, math.ceil(self._sent_at[0] + window - now))
        self._sent_at.append(now)
        return None

    async def _create_message(self, request: web.Request) -> web.Response:
        form = await request.post()
        params: Params = {}
        for key in form.keys():
            values = [str(v) for v in form.getall(key)]
            params[key] = values if key == "MediaUrl" or len(values) > 1 else values[0]
        response = self._validate(request, params)
        if response is None:
            response = self._accept(params)
        self.requests.append((params, response.status))
        return response

    def _validate(self, request: web.Request, params: Params) -> web.Response | None:
        """Return an error response, or ``None`` if the message can be created."""
        if not self._authorized(request):
            return _twilio_error(401, 20003, ERROR_MESSAGES[20003])
        if request.match_info["account_sid"] != self.account_sid:
            return _twilio_error(404, 20404, ERROR_MESSAGES[20404])
        if self._failures:
            failure = self._failures[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                self._failures.popleft()
            return _twilio_error(failure.status, failure.code, failure.message, failure.retry_after)
        to = params.get("To")
        if not to:
            return _twilio_error(400, 21604, ERROR_MESSAGES[21604])
        if not params.get("From") and not params.get("MessagingServiceSid"):
            return _twilio_error(400, 21603, ERROR_MESSAGES[21603])
        if not (params.get("Body") or params.get("MediaUrl") or params.get("ContentSid")):
            return _twilio_error(400, 21602, ERROR_MESSAGES[21602])
        if len(str(params.get("Body", ""))) > 1600:
            return _twilio_error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
        failing = self._failing_recipients.get(str(to))
        if failing is not None:
            return _twilio_error(failing.status, failing.code, failing.message)
        wait = self._rate_limited(time.monotonic())
        if wait is not None:
            self.violations += 1
            return _twilio_error(429, 20429, ERROR_MESSAGES[20429], wait)
        return None

    def _accept(self, params: Params) -> web.Response:
        media = params.get("MediaUrl") or []
        sid = new_sid("MM" if media else "SM")
        now = _rfc2822()
        body = str(params.get("Body", ""))
        to = str(params["To"])
        from_ = params.get("From")
        resource: Params = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": from_,
            "messaging_service_sid": params.get("MessagingServiceSid"),
            "num_media": str(len(media)),
            "num_segments": "1" if to.startswith("whatsapp:") else str(count_segments(body)),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued" if from_ else "accepted",
            "subresource_uris": {"media": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}/Media.json"},
            "to": to,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}.json",
        }
        self.messages.append(params)
        self.resources[sid] = {**resource, "_status_callback": params.get("StatusCallback")}
        return web.json_response(resource, status=201)

    async def _fetch_message(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return _twilio_error(401, 20003, ERROR_MESSAGES[20003])
        resource = self.resources.get(request.match_info["sid"])
        if resource is None:
            return _twilio_error(404, 20404, ERROR_MESSAGES[20404])
        return web.json_response({k: v for k, v in resource.items() if not k.startswith("_")})

    async def _get_media(self, request: web.Request) -> web.Response:
        self.media_requests.append(request.match_info["path"])
        if not self._authorized(request):
            return _twilio_error(401, 20003, ERROR_MESSAGES[20003])
        if request.match_info["path"] in self._redirects:
            raise web.HTTPFound(self._redirects[request.match_info["path"]])
        media = self._media.get(request.match_info["path"])
        if media is None:
            return _twilio_error(404, 20404, ERROR_MESSAGES[20404])
        return web.Response(body=media.content, headers={"Content-Type": media.content_type})


def _twilio_error(status: int, code: int, message: str, retry_after: int | None = None) -> web.Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.json_response(body, status=status, headers=headers)


# ---------------------------------------------------------------- webhook helpers


def sign(auth_token: str, url: str, params: Mapping[str, Any]) -> str:
    """``X-Twilio-Signature`` for a form POST of ``params`` to the public ``url``."""
    return RequestValidator(auth_token).compute_signature(url, dict(params))


def _media_params(media: Sequence[tuple[str, str]]) -> Params:
    params: Params = {}
    for i, (url, content_type) in enumerate(media):
        params[f"MediaUrl{i}"] = url
        params[f"MediaContentType{i}"] = content_type
    return params


def inbound_sms_params(
    from_: str,
    to: str,
    body: str,
    message_sid: str | None = None,
    num_media: int | None = None,
    media: Sequence[tuple[str, str]] = (),
    *,
    account_sid: str = DEFAULT_ACCOUNT_SID,
    messaging_service_sid: str | None = None,
) -> Params:
    """Form params of an inbound SMS/MMS webhook (``NumMedia`` defaults to ``len(media)``)."""
    sid = message_sid or new_sid("MM" if media else "SM")
    params: Params = {
        "ToCountry": "DE",
        "ToState": "",
        "SmsMessageSid": sid,
        "NumMedia": str(len(media) if num_media is None else num_media),
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": body,
        "FromCountry": "DE",
        "To": to,
        "ToZip": "",
        "NumSegments": str(count_segments(body)),
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": from_,
        "ApiVersion": API_VERSION,
    }
    if messaging_service_sid:
        params["MessagingServiceSid"] = messaging_service_sid
    params.update(_media_params(media))
    return params


def inbound_whatsapp_params(
    wa_id: str,
    profile_name: str,
    body: str,
    to: str = "whatsapp:+14155238886",
    message_sid: str | None = None,
    media: Sequence[tuple[str, str]] = (),
    button_text: str | None = None,
    button_payload: str | None = None,
    *,
    account_sid: str = DEFAULT_ACCOUNT_SID,
    message_type: str | None = None,
) -> Params:
    """Form params of an inbound WhatsApp webhook (``From`` ``whatsapp:+<wa_id>``, ``WaId`` without plus).

    ``MessageType`` follows the content (text, button, image, audio, video, document) unless
    given: a sticker arrives as ``image/webp`` media with ``message_type="sticker"``."""
    wa = wa_id.removeprefix("whatsapp:").lstrip("+")
    sid = message_sid or new_sid("MM" if media else "SM")
    if message_type is None and (button_text is not None or button_payload is not None):
        message_type = "button"
    elif message_type is None and media:
        message_type = media[0][1].split("/")[0]  # image, audio, video …
        message_type = "document" if message_type == "application" else message_type
    elif message_type is None:
        message_type = "text"
    params: Params = {
        "SmsMessageSid": sid,
        "NumMedia": str(len(media)),
        "ProfileName": profile_name,
        "MessageType": message_type,
        "SmsSid": sid,
        "WaId": wa,
        "SmsStatus": "received",
        "Body": body,
        "To": to if to.startswith("whatsapp:") else f"whatsapp:{to}",
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": f"whatsapp:+{wa}",
        "ApiVersion": API_VERSION,
    }
    if button_text is not None:
        params["ButtonText"] = button_text
    if button_payload is not None:
        params["ButtonPayload"] = button_payload
    params.update(_media_params(media))
    return params


def inbound_whatsapp_location_params(
    wa_id: str,
    profile_name: str,
    latitude: float,
    longitude: float,
    address: str | None = None,
    label: str | None = None,
    to: str = "whatsapp:+14155238886",
    *,
    account_sid: str = DEFAULT_ACCOUNT_SID,
) -> Params:
    """A shared location (or place: ``address``/``label``): ``MessageType=location``, empty
    ``Body``, ``Latitude``/``Longitude``, no media."""
    params = inbound_whatsapp_params(wa_id, profile_name, "", to=to, account_sid=account_sid, message_type="location")
    params["Latitude"] = str(latitude)
    params["Longitude"] = str(longitude)
    if address is not None:
        params["Address"] = address
    if label is not None:
        params["Label"] = label
    return params


def status_callback_params(
    message_sid: str,
    status: str,
    error_code: int | None = None,
    *,
    to: str = "+4915100000000",
    from_: str = "+4930000000000",
    account_sid: str = DEFAULT_ACCOUNT_SID,
) -> Params:
    """Form params of a message status callback (``ErrorCode`` only when given)."""
    params: Params = {
        "SmsSid": message_sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": to,
        "MessageSid": message_sid,
        "AccountSid": account_sid,
        "From": from_,
        "ApiVersion": API_VERSION,
    }
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    return params
