"""The organisers' own pages: the audit log (who did what, when) and the accounts (create or
update one with a role and a password, disable one). Only an organiser sees them; every change
is audited (a disabling in the transaction that makes it)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from bot.storage.accounts import EMAIL, MIN_PASSWORD, ROLES, Account, record
from bot.storage.models import AdminSession, AdminUser
from bot.web.admin.core import DASHBOARD, ROLE_LABELS, audit, gettext, page, render

AUDIT_PAGE = 50
DETAIL_CHARS = 120


# --- the audit log -----------------------------------------------------------------------------


def summarise(detail: dict[str, Any] | None) -> str:
    """An entry's detail on one line: ``key: value`` pairs, cut at DETAIL_CHARS."""
    if not detail:
        return ""
    parts = []
    for key, value in detail.items():
        if isinstance(value, list | tuple):
            value = ", ".join(str(v) for v in value)
        elif isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        parts.append(f"{key}: {value}")
    line = "; ".join(parts)
    return line if len(line) <= DETAIL_CHARS else line[: DETAIL_CHARS - 1] + "…"


def _page_number(request: web.Request) -> int:
    try:
        return max(1, min(int(request.query.get("page", "1")), 100_000))
    except ValueError:
        return 1


@page("organiser")
async def audit_log(request: web.Request, who: Account) -> web.StreamResponse:
    dash = request.app[DASHBOARD]
    number = _page_number(request)
    rows = await dash.accounts.audit_log(limit=AUDIT_PAGE + 1, offset=(number - 1) * AUDIT_PAGE)
    zone = dash.kz.settings.zone
    entries = [
        {
            "at": row.at.astimezone(zone),
            "actor": row.actor,
            "action": row.action,
            "target": row.target or "",
            "detail": summarise(row.detail),
        }
        for row in rows[:AUDIT_PAGE]
    ]
    return render(
        request,
        "audit.html",
        {
            "entries": entries,
            "page": number,
            "has_next": len(rows) > AUDIT_PAGE,
            "zone": dash.kz.settings.timezone,
        },
    )


# --- accounts ----------------------------------------------------------------------------------


async def _accounts_page(
    request: web.Request, *, error: str | None = None, done: str | None = None, email: str = "", status: int = 200
) -> web.Response:
    dash = request.app[DASHBOARD]
    zone = dash.kz.settings.zone
    users = await dash.accounts.users()
    return render(
        request,
        "accounts.html",
        {
            "users": [
                {
                    "email": u.email,
                    "role": ROLE_LABELS[u.role],
                    "last": u.last_login_at.astimezone(zone) if u.last_login_at else None,
                }
                for u in users
            ],
            "roles": [(r, ROLE_LABELS[r]) for r in ROLES],
            "error": error,
            "done": done,
            "email": email,
            "min_password": MIN_PASSWORD,
        },
        status=status,
    )


@page("organiser")
async def accounts(request: web.Request, who: Account) -> web.StreamResponse:
    return await _accounts_page(request, done=_done_message(request))


def _done_message(request: web.Request) -> str | None:
    messages = {
        "saved": gettext(request, "The account is saved. If it existed, its sessions have ended."),
        "disabled": gettext(request, "The account is disabled and signed out."),
    }
    return messages.get(request.query.get("done", ""))


@page("organiser")
async def save_account(request: web.Request, who: Account) -> web.StreamResponse:
    """Create an account, or give an existing one a new password and role (its sessions end)."""
    dash = request.app[DASHBOARD]
    form = await request.post()
    email = str(form.get("email", "")).strip().lower()[:254]
    role = str(form.get("role", ""))
    password = str(form.get("password", ""))[:1024]
    error = None
    if not EMAIL.fullmatch(email):
        error = gettext(request, "Please enter an e-mail address.")
    elif role not in ROLES:
        error = gettext(request, "Please choose a role.")
    elif len(password) < MIN_PASSWORD:
        error = gettext(request, "The password needs at least {count} characters.", count=MIN_PASSWORD)
    elif email == who.email and role != "organiser":
        error = gettext(request, "You cannot take the organiser role from your own account.")
    if error:
        return await _accounts_page(request, error=error, email=email, status=400)
    hashed = await asyncio.to_thread(dash.hasher.hash, password)  # tens of ms of CPU: off the event loop
    new = await dash.accounts.save_user(email, hashed, role, dash.now())
    await audit(request, "account-created" if new else "account-updated", email, {"role": role})
    raise web.HTTPSeeOther("/admin/accounts?done=saved")


@page("organiser")
async def disable_account(request: web.Request, who: Account) -> web.StreamResponse:
    """Disable an account (it can no longer sign in; its sessions end). Not one's own."""
    dash = request.app[DASHBOARD]
    form = await request.post()
    email = str(form.get("email", "")).strip().lower()[:254]
    if email == who.email:
        return await _accounts_page(request, error=gettext(request, "You cannot disable your own account."), status=400)
    now = dash.now()

    def work(conn: Connection) -> bool:
        found = conn.execute(
            select(AdminUser.id).where(AdminUser.email == email, AdminUser.disabled_at.is_(None))
        ).scalar()
        if found is None:
            return False
        conn.execute(update(AdminUser).where(AdminUser.id == found).values(disabled_at=now))
        conn.execute(delete(AdminSession).where(AdminSession.user_id == found))
        record(conn, who.email, "account-disabled", email, None, now)
        return True

    if not await dash.kz.db.run(work):
        return await _accounts_page(request, error=gettext(request, "There is no such account."), status=404)
    raise web.HTTPSeeOther("/admin/accounts?done=disabled")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/audit", audit_log)
    app.router.add_get("/admin/accounts", accounts)
    app.router.add_post("/admin/accounts", save_account)
    app.router.add_post("/admin/accounts/disable", disable_account)
