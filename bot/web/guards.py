"""What every request of the web process passes: body size limits, security headers,
the token of ``/metrics`` and the budget of new web chat conversations per source.

- **Body size** per route (:data:`BODY_LIMITS`): a larger body is refused with ``413``
  before any handler reads it — by its ``Content-Length``, or while it is read when it
  comes chunked — so nothing of it is stored.
- **Security headers** on every response, errors and static files included: a
  Content-Security-Policy that allows only the page's own script and style (the page's
  one inline script carries a nonce), no framing, ``nosniff``, no referrer, no
  camera, microphone or location.
- ``GET /metrics`` answers only with ``Authorization: Bearer $METRICS_TOKEN`` (compared in
  constant time); without ``METRICS_TOKEN`` it is ``404``.
- **New web chat conversations** per source (:class:`NewClientBudget`): a client id that
  has no resident yet may start one only while its source — the peer address, or the
  right-most entry of ``CLIENT_IP_HEADER`` when the operator set one (their proxy's
  header), IPv6 grouped by /64 — has started fewer than ``WEBCHAT_NEW_CLIENTS_PER_HOUR``
  within the hour; beyond that ``429`` and nothing is stored. The sources live in this
  process's memory only and are never logged or stored.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError
from pydantic import SecretStr

log = logging.getLogger(__name__)
KB = 1024
# the largest body each route takes (a web chat text of 10,000 emoji as JSON escapes is ~120 KB;
# a Telegram update or a Twilio form a few KB, with a quoted reply some tens of KB)
BODY_LIMITS: list[tuple[str, int]] = [("/webchat/api/", 256 * KB), ("/webhooks/", 128 * KB)]
DEFAULT_BODY_LIMIT = 64 * KB
MAX_BODY = max([DEFAULT_BODY_LIMIT] + [limit for _, limit in BODY_LIMITS])

CSP = (
    "default-src 'none'; script-src 'self'{nonce}; style-src 'self'; img-src 'self'; connect-src 'self';"
    " form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP.format(nonce=""),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def body_limit(path: str) -> int:
    return next((limit for prefix, limit in BODY_LIMITS if path.startswith(prefix)), DEFAULT_BODY_LIMIT)


def _too_large(limit: int) -> web.Response:
    return web.json_response({"error": f"the request body is too large (at most {limit // KB} KB)"}, status=413)


@web.middleware
async def body_limits(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    """Refuse a body beyond the route's limit before a handler sees it."""
    limit = body_limit(request.path)
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if request.body_exists and encoding not in ("", "identity"):
        # neither the providers nor the web chat page compress what they send us: a compressed
        # (or falsely labelled) body is refused before anyone decodes it
        return web.json_response({"error": "compressed request bodies are not accepted"}, status=415)
    if request.content_length is not None and request.content_length > limit:
        return _too_large(limit)
    if request.body_exists:
        request = request.clone(client_max_size=limit)
        try:
            await request.read()  # kept by the request: the handler reads it from there
        except web.HTTPRequestEntityTooLarge:
            return _too_large(limit)
        except RequestPayloadError:  # a Content-Encoding the body does not have, a broken chunked body
            return web.json_response({"error": "the body does not decode"}, status=400)
    return await handler(request)


def _secure(headers: Any) -> None:
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)


@web.middleware
async def security_headers(request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _secure(exc.headers)
        raise
    _secure(response.headers)
    return response


def with_nonce(page: str) -> tuple[str, dict[str, str]]:
    """The page with a fresh nonce on its inline scripts, and the policy that allows just them."""
    nonce = secrets.token_urlsafe(18)
    page = page.replace("<script>", f'<script nonce="{nonce}">')
    return page, {"Content-Security-Policy": CSP.format(nonce=f" 'nonce-{nonce}'")}


def metrics_refusal(request: web.Request, token: SecretStr | None) -> web.Response | None:
    """None if the request may read /metrics; otherwise the answer (404 without a token set)."""
    if token is None:
        raise web.HTTPNotFound()
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    expected = hashlib.sha256(token.get_secret_value().encode()).digest()
    offered = hashlib.sha256(given.strip().encode()).digest()
    if scheme.lower() == "bearer" and hmac.compare_digest(offered, expected):
        return None
    return web.json_response(
        {"error": "a valid bearer token is required"}, status=401, headers={"WWW-Authenticate": "Bearer"}
    )


def client_source(request: web.Request, header: str | None) -> str:
    """Where a request comes from, for budgets: the proxy's header only when configured."""
    value = ""
    if header:
        value = request.headers.get(header, "").split(",")[-1].strip()
    if not value:
        value = request.remote or ""
    try:
        ip = ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return value[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))  # one host usually has a whole /64
    return str(ip)


class NewClientBudget:
    """At most ``per_hour`` new web chat client ids per source within any hour (0: no limit)."""

    WINDOW = 3600.0
    PRUNE_AT = 10_000  # sources remembered before the expired ones are dropped

    def __init__(self, per_hour: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_hour = per_hour
        self.clock = clock
        self._started: dict[str, deque[tuple[float, str]]] = {}
        self._warned_at = float("-inf")

    def admit(self, source: str, client_id: str) -> float | None:
        """None if this client id may start a conversation; otherwise the seconds until one may."""
        if self.per_hour <= 0:
            return None
        now = self.clock()
        started = self._started.setdefault(source, deque())
        while started and started[0][0] <= now - self.WINDOW:
            started.popleft()
        if any(known == client_id for _, known in started):
            return None  # its first message is still on the way
        if len(started) >= self.per_hour:
            if now - self._warned_at > 60:  # at most once a minute, and never the source itself
                self._warned_at = now
                log.warning(
                    "web chat: a source started %d new conversations within an hour; more are refused"
                    " (behind a reverse proxy, set CLIENT_IP_HEADER)",
                    self.per_hour,
                )
            return max(1.0, started[0][0] + self.WINDOW - now)
        started.append((now, client_id))
        if len(self._started) > self.PRUNE_AT:
            self._prune(now)
        return None

    def _prune(self, now: float) -> None:
        for source in [s for s, q in self._started.items() if not q or q[-1][0] <= now - self.WINDOW]:
            del self._started[source]


def too_many_new_clients(retry_after: float) -> web.Response:
    return web.json_response(
        {"error": "too many new conversations from your network; please try again later"},
        status=429,
        headers={"Retry-After": str(int(retry_after) + 1)},
    )
