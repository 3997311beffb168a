"""Signing in and out, and the start page."""

from __future__ import annotations

import asyncio
import hmac

from aiohttp import web
from argon2.exceptions import InvalidHashError, VerificationError

from bot.storage.accounts import Account
from bot.web import guards
from bot.web.admin.core import (
    COOKIE,
    DASHBOARD,
    SESSION,
    SESSION_LIFETIME,
    THROTTLE_FAILURES,
    THROTTLE_WINDOW,
    gettext,
    new_token,
    page,
    render,
    signed_in,
)

# a well-formed hash of a random password: a wrong e-mail costs as much time as a wrong password
_DUMMY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$2TZjHKJv9Ru1qt+3/LEtrXXDqAs1hdBz8ChJGbO7g0o"


def _login_page(request: web.Request, email: str = "", error: str | None = None, status: int = 200) -> web.Response:
    dash = request.app[DASHBOARD]
    # the sign-in form's own CSRF token: a MAC of a random value kept in a short-lived cookie
    pre = request.cookies.get("kz_login") or new_token()
    response = render(
        request,
        "login.html",
        {"email": email, "error": error, "login_csrf": dash.csrf_token("login:" + pre)},
        status=status,
    )
    response.set_cookie("kz_login", pre, httponly=True, samesite="Strict", path="/admin/login", max_age=3600)
    return response


async def login_form(request: web.Request) -> web.StreamResponse:
    if await signed_in(request) is not None:
        raise web.HTTPSeeOther("/admin/")
    return _login_page(request)


async def login(request: web.Request) -> web.StreamResponse:
    dash = request.app[DASHBOARD]
    form = await request.post()
    email = str(form.get("email", "")).strip().lower()[:254]
    password = str(form.get("password", ""))[:1024]
    pre = request.cookies.get("kz_login", "")
    given = str(form.get("csrf_token", ""))
    if not pre or not hmac.compare_digest(given, dash.csrf_token("login:" + pre)):
        return web.Response(status=403, text=gettext(request, "You are not allowed to do that."))
    now = dash.now()
    source = guards.client_source(request, dash.kz.settings.client_ip_header)
    keys = [dash.throttle_key("email", email), dash.throttle_key("client", source)]
    if await dash.accounts.failures(keys, now - THROTTLE_WINDOW) >= THROTTLE_FAILURES:
        minutes = int(THROTTLE_WINDOW.total_seconds() // 60)
        message = gettext(request, "Too many failed attempts. Please wait {minutes} minutes.", minutes=minutes)
        response = _login_page(request, email, message, status=429)
        response.headers["Retry-After"] = str(int(THROTTLE_WINDOW.total_seconds()))
        return response
    account = await dash.accounts.by_email(email) if email else None
    ok = False
    try:
        # argon2 takes tens of milliseconds of CPU on purpose: in a thread, so webhooks are
        # acknowledged meanwhile
        ok = await asyncio.to_thread(dash.hasher.verify, account.password_hash if account else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or account is None:
        await dash.accounts.record_failure(keys, now, now - THROTTLE_WINDOW)
        return _login_page(request, email, gettext(request, "E-mail address or password is wrong."), status=401)
    if dash.hasher.check_needs_rehash(account.password_hash):
        await dash.accounts.set_password_hash(account.id, await asyncio.to_thread(dash.hasher.hash, password))
    await dash.accounts.clear_failures(keys[0])
    token = new_token()
    await dash.accounts.open_session(dash.session_id(token), account.id, now, SESSION_LIFETIME)
    await dash.accounts.audit(account.email, "sign-in", None, None, now)
    response = web.HTTPSeeOther("/admin/")
    response.set_cookie(
        COOKIE,
        dash.sign(token),
        httponly=True,
        samesite="Strict",
        path="/admin",
        max_age=int(SESSION_LIFETIME.total_seconds()),
        secure=dash.kz.settings.base_url.startswith("https://"),
    )
    response.del_cookie("kz_login", path="/admin/login")
    raise response


@page("viewer")
async def logout(request: web.Request, who: Account) -> web.StreamResponse:
    dash = request.app[DASHBOARD]
    await dash.accounts.close_session(request[SESSION])
    await dash.accounts.audit(who.email, "sign-out", None, None, dash.now())
    response = web.HTTPSeeOther("/admin/login")
    response.del_cookie(COOKIE, path="/admin")
    raise response


@page("viewer")
async def home(request: web.Request, who: Account) -> web.StreamResponse:
    return render(request, "home.html", {})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/login", login_form)
    app.router.add_post("/admin/login", login)
    app.router.add_post("/admin/logout", logout)
    app.router.add_get("/admin/", home)
    app.router.add_get("/admin", root)


async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther("/admin/")
