"""What every dashboard page stands on: the secret key, sessions in signed HttpOnly SameSite
cookies, CSRF tokens, roles checked on the server, the audit log, the UI language (de/en from
the same gettext catalogs as the bot's texts, domain ``dashboard``) and the Jinja templates.

A page handler is declared with :func:`page`::

    @page("moderator")
    async def moderate(request: web.Request, who: Account) -> web.StreamResponse: ...

It runs only for a signed-in account with at least that role; every POST has had its
``csrf_token`` checked before the handler sees it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
import jinja2
from aiohttp import web
from argon2 import PasswordHasher
from babel.messages.mofile import write_mo
from babel.support import NullTranslations, Translations
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy.engine import make_url

from bot.app import Kiezstimme
from bot.conversation.i18n import read_catalog
from bot.storage.accounts import Account, AccountRepository
from bot.storage.crypto import read_or_create_key_file

TEMPLATES = Path(__file__).resolve().parent / "templates"
DOMAIN = "dashboard"
UI_LANGUAGES = ("de", "en")  # the dashboard's own languages; msgids are English
COOKIE = "kz_admin"
SESSION_LIFETIME = timedelta(hours=12)
SECRET_FILE = "secret.key"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'nonce-{nonce}'; img-src 'self'; media-src 'self';"
    " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
THROTTLE_WINDOW = timedelta(minutes=15)
THROTTLE_FAILURES = 5  # per e-mail and per client within the window, then sign-in waits


def N_(message: str) -> str:
    """Mark a dashboard string (in Python code) for extraction; translated when shown."""
    return message


ROLE_LABELS = {"viewer": N_("viewer"), "moderator": N_("moderator"), "organiser": N_("organiser")}
# channels' display names on every page (product names stay as they are; another channel shows by its name)
CHANNEL_LABELS = {
    "telegram": "Telegram",
    "sms": "SMS",
    "whatsapp": "WhatsApp",
    "webchat": N_("web chat"),
    "console": N_("terminal"),  # (the msgid must not be a channel's name: see test_architecture)
}


# --- the secret key -------------------------------------------------------------------------


def resolve_secret_key(kz: Kiezstimme) -> bytes:
    """SECRET_KEY; on the embedded default a key generated once into ``data/`` (mode 0600);
    on PostgreSQL without one, derived from DATA_KEY (every process has that one)."""
    given = kz.settings.secret_key.get_secret_value() if kz.settings.secret_key else ""
    if given.strip():
        return given.strip().encode()
    url = make_url(kz.settings.database_url)
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        return read_or_create_key_file(Path(url.database).parent / SECRET_FILE).encode()
    data_key = kz.db.key_source.key.encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"kiezstimme dashboard").derive(data_key)


# --- the dashboard's state --------------------------------------------------------------------


@dataclass
class Dashboard:
    kz: Kiezstimme
    secret: bytes
    accounts: AccountRepository
    hasher: PasswordHasher = field(default_factory=PasswordHasher)
    translations: dict[str, NullTranslations] = field(default_factory=dict)

    def sign(self, token: str) -> str:
        mac = hmac.new(self.secret, b"session:" + token.encode(), hashlib.sha256).digest()
        return f"{token}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"

    def unsign(self, value: str) -> str | None:
        token, _, _mac = value.partition(".")
        if not token or len(value) > 200 or not hmac.compare_digest(self.sign(token), value):
            return None
        return token

    @staticmethod
    def session_id(token: str) -> str:
        """What the database keeps of a session's token: its hash."""
        return hashlib.sha256(token.encode()).hexdigest()

    def csrf_token(self, session_id: str) -> str:
        """The session's CSRF token: a MAC of its id (another session's token is wrong)."""
        mac = hmac.new(self.secret, b"csrf:" + session_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def throttle_key(self, kind: str, value: str) -> str:
        """A keyed hash: the failures table names no e-mail address and no client address."""
        return hmac.new(self.secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def now(self) -> datetime:
        return self.kz.service.clock()


DASHBOARD = web.AppKey("dashboard", Dashboard)
WHO: web.RequestKey[Account | None] = web.RequestKey("kz_admin_account")  # the signed-in account, once looked up
SESSION = web.RequestKey("kz_admin_session", str)  # the session id (hash of the token)


def load_translations(i18n_dir: Path) -> dict[str, NullTranslations]:
    """The dashboard's catalogs: per language every ``dashboard*.po`` (one file per part of the
    dashboard, merged); English is the msgids themselves."""
    out: dict[str, NullTranslations] = {"en": NullTranslations()}
    for code in UI_LANGUAGES:
        if code == "en":
            continue
        merged = None
        for path in sorted((i18n_dir / code / "LC_MESSAGES").glob(f"{DOMAIN}*.po")):
            catalog = read_catalog(path, code)
            if merged is None:
                merged = catalog
            else:
                for message in catalog:
                    if message.id:
                        merged[message.id] = message
        if merged is None:
            continue
        buf = io.BytesIO()
        write_mo(buf, merged, use_fuzzy=False)
        buf.seek(0)
        out[code] = Translations(fp=buf, domain=DOMAIN)
    return out


# --- the UI language ----------------------------------------------------------------------------


def ui_language(request: web.Request) -> str:
    """``?lang=de|en``, else the browser's first of de/en, else German (a Berlin city hall)."""
    wanted = request.query.get("lang", "")
    if wanted in UI_LANGUAGES:
        return wanted
    for part in request.headers.get("Accept-Language", "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in UI_LANGUAGES:
            return tag
    return "de"


def translator(request: web.Request) -> NullTranslations:
    dash = request.app[DASHBOARD]
    return dash.translations.get(ui_language(request)) or dash.translations["en"]


def keep_language(request: web.Request, path: str, **params: str) -> str:
    """``path`` with ``params``, and the UI language when this request chose it with ``?lang=``
    (a redirect after a form keeps the page in the language it was shown in)."""
    wanted = request.query.get("lang")
    query = {"lang": wanted, **params} if wanted in UI_LANGUAGES else params
    return f"{path}?{urlencode(query)}" if query else path


def channel_label(request: web.Request, name: str) -> str:
    label = CHANNEL_LABELS.get(name)
    return gettext(request, label) if label else name


def gettext(request: web.Request, msgid: str, **params: Any) -> str:
    text = translator(request).gettext(msgid)
    return text.format(**params) if params else text


# --- sessions and roles ------------------------------------------------------------------------


async def signed_in(request: web.Request) -> Account | None:
    """The account whose valid session cookie came with the request."""
    if WHO in request:
        return request[WHO]
    dash = request.app[DASHBOARD]
    token = dash.unsign(request.cookies.get(COOKIE, ""))
    who = None
    if token is not None:
        sid = dash.session_id(token)
        who = await dash.accounts.session_user(sid, dash.now())
        if who is not None:
            request[SESSION] = sid
    request[WHO] = who
    return who


def wants_json(request: web.Request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def to_login(request: web.Request) -> web.StreamResponse:
    if wants_json(request):
        return web.json_response({"error": "sign in first"}, status=401)
    raise web.HTTPSeeOther("/admin/login")


def forbidden(request: web.Request) -> web.Response:
    return web.Response(status=403, text=gettext(request, "You are not allowed to do that."), content_type="text/plain")


async def csrf_ok(request: web.Request) -> bool:
    dash = request.app[DASHBOARD]
    form = await request.post()
    given = form.get("csrf_token")
    sid = request.get(SESSION)
    return isinstance(given, str) and sid is not None and hmac.compare_digest(given, dash.csrf_token(sid))


Handler = Callable[[web.Request, Account], Awaitable[web.StreamResponse]]


def page(role: str = "viewer") -> Callable[[Handler], Callable[[web.Request], Awaitable[web.StreamResponse]]]:
    """Declare a dashboard handler: a session with at least ``role`` (else 303 to the sign-in
    page, 401 for JSON, 403 for a role without the right), and on POST a right CSRF token
    (else 403 before anything changes)."""

    def decorate(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        @wraps(handler)
        async def wrapped(request: web.Request) -> web.StreamResponse:
            who = await signed_in(request)
            if who is None:
                return to_login(request)
            if request.method == "POST" and not await csrf_ok(request):
                return forbidden(request)
            if not who.can(role):
                return forbidden(request)
            return await handler(request, who)

        return wrapped

    return decorate


async def audit(request: web.Request, action: str, target: str | None, detail: dict[str, Any] | None = None) -> None:
    """Record who did what (the signed-in account) in the audit log."""
    dash = request.app[DASHBOARD]
    who = request.get(WHO)
    await dash.accounts.audit(who.email if who else "?", action, target, detail, dash.now())


# --- templates ------------------------------------------------------------------------------


def render(request: web.Request, template: str, context: dict[str, Any], *, status: int = 200) -> web.Response:
    """A page from ``templates/``, with what every page needs: ``_`` (the UI language's
    gettext, with ``{name}`` parameters), ``lang``, ``who`` and ``csrf_token``."""
    dash = request.app[DASHBOARD]
    tr = translator(request)

    def _(msgid: str, **params: Any) -> str:
        text = tr.gettext(msgid)
        return text.format(**params) if params else text

    sid = request.get(SESSION)
    lang = ui_language(request)
    nonce = secrets.token_urlsafe(18)
    base = {
        "nonce": nonce,  # for an inline <style> (the charts' own), the only inline content allowed
        "_": _,
        "lang": lang,
        "who": request.get(WHO),
        "csrf_token": dash.csrf_token(sid) if sid else "",
        "path": request.path,
        "query": request.query_string,
        # the same page in the other UI language, its filters and page number kept
        "other_language": urlencode(
            [(k, v) for k, v in request.query.items() if k != "lang"] + [("lang", "en" if lang == "de" else "de")]
        ),
    }
    response = aiohttp_jinja2.render_template(template, request, {**base, **context}, status=status)
    response.headers["Cache-Control"] = "no-store"  # residents' texts: never in a shared cache
    response.headers["Content-Security-Policy"] = CSP.format(nonce=nonce)
    return response


def setup(app: web.Application, kz: Kiezstimme) -> Dashboard:
    """Templates and the dashboard's state on the app (the routes are added by bot.web.admin.routes)."""
    dash = Dashboard(kz, resolve_secret_key(kz), AccountRepository(kz.db))
    dash.translations = load_translations(kz.settings.i18n_dir)
    app[DASHBOARD] = dash
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),  # residents' text is data
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return dash


def new_token() -> str:
    return secrets.token_urlsafe(32)
