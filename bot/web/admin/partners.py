"""Outreach partners: the list with what each partner's code brought (counts only), a new
partner (organisers), and a partner's entry points — a Telegram deep link, a WhatsApp
``wa.me`` link with the code prefilled, an SMS keyword — each as a printable QR code.

Everyone signed in may read the list and the entry points (the counts are no one's personal
data); only an organiser creates or changes a partner. The code never changes: it is printed.
"""

from __future__ import annotations

import io
from typing import Any

import segno
from aiohttp import web

from bot.storage.accounts import Account
from bot.storage.partners import KINDS, OutreachPartner, PartnerRepository
from bot.web.admin.core import DASHBOARD, N_, audit, gettext, keep_language, page, render, ui_language
from channels import registry
from channels.registry import EntryPoint

KIND_LABELS = {
    "shelter": N_("Shelter"),
    "youth_centre": N_("Youth centre"),
    "migrant_association": N_("Migrant association"),
    "school": N_("School"),
    "library": N_("Library"),
    "social_service": N_("Social service"),
    "other": N_("Other"),
}
assert set(KIND_LABELS) == set(KINDS)
NAME_MAX = 200
QR_ERROR = "m"  # 15 % of a printed code may be dirty or torn and it still reads


def entry_points(settings: Any, partner: OutreachPartner) -> dict[str, EntryPoint]:
    """The partner's entry points on the channels this installation has (each channel knows its own)."""
    return registry.entry_points(settings, partner.telegram_payload, f"START {partner.code}")


def qr_svg(content: str, title: str = "") -> bytes:
    """A QR code of exactly ``content`` as a standalone SVG document (segno)."""
    buf = io.BytesIO()
    segno.make(content, error=QR_ERROR, micro=False).save(buf, kind="svg", scale=8, border=4, title=title or None)
    return buf.getvalue()


def _repo(request: web.Request) -> PartnerRepository:
    return PartnerRepository(request.app[DASHBOARD].kz.db)


def _districts(request: web.Request) -> list[tuple[str, str]]:
    """(id, label) of the process's districts in the UI language; "prefer not to say" is a
    resident's answer, not a place, so it is left out."""
    kz = request.app[DASHBOARD].kz
    tr = kz.catalogs.get(ui_language(request))
    return [(o.id, tr.gettext(o.label)) for o in kz.flows.options.get("districts", ()) if o.id != "none"]


def _labels(request: web.Request) -> dict[str, Any]:
    return {
        "kinds": [(k, gettext(request, KIND_LABELS[k])) for k in KINDS],
        "kind_label": {k: gettext(request, v) for k, v in KIND_LABELS.items()},
        "districts": _districts(request),
        "district_label": dict(_districts(request)),
    }


async def _form(request: web.Request) -> tuple[dict[str, str], list[str]]:
    """The partner form's values and what is wrong with them (translated)."""
    form = await request.post()
    values = {
        "name": " ".join(str(form.get("name", "")).split())[:NAME_MAX],
        "kind": str(form.get("kind", "")),
        "district": str(form.get("district", "")),
    }
    errors = []
    if not values["name"]:
        errors.append(gettext(request, "Please enter the partner's name."))
    if values["kind"] not in KINDS:
        errors.append(gettext(request, "Please choose what kind of partner it is."))
    if values["district"] and values["district"] not in dict(_districts(request)):
        errors.append(gettext(request, "Please choose a district from the list."))
    return values, errors


@page("viewer")
async def partner_list(request: web.Request, who: Account) -> web.StreamResponse:
    return await _list_page(request, {"name": "", "kind": "", "district": ""}, [])


async def _list_page(request: web.Request, values: dict[str, str], errors: list[str]) -> web.Response:
    reach = await _repo(request).reach()
    context = {"reach": reach, "values": values, "errors": errors, "action": keep_language(request, "/admin/partners")}
    return render(request, "partners.html", context | _labels(request), status=400 if errors else 200)


@page("organiser")
async def partner_create(request: web.Request, who: Account) -> web.StreamResponse:
    values, errors = await _form(request)
    if errors:
        return await _list_page(request, values, errors)
    dash = request.app[DASHBOARD]
    partner = await _repo(request).create(values["name"], values["kind"], values["district"] or None, dash.now())
    await audit(request, "partner.create", partner.code, values)
    raise web.HTTPSeeOther(keep_language(request, f"/admin/partners/{partner.id}"))


async def _partner(request: web.Request) -> OutreachPartner:
    partner = await _repo(request).get(int(request.match_info["id"]))
    if partner is None:
        raise web.HTTPNotFound(text=gettext(request, "There is no such partner."))
    return partner


@page("viewer")
async def partner_detail(request: web.Request, who: Account) -> web.StreamResponse:
    partner = await _partner(request)
    return await _detail_page(request, partner, {}, [])


async def _detail_page(
    request: web.Request, partner: OutreachPartner, values: dict[str, str], errors: list[str]
) -> web.Response:
    settings = request.app[DASHBOARD].kz.settings
    context = {
        "partner": partner,
        "entries": entry_points(settings, partner),
        "values": values or {"name": partner.name, "kind": partner.kind, "district": partner.district or ""},
        "errors": errors,
        "action": keep_language(request, f"/admin/partners/{partner.id}"),
    }
    return render(request, "partner.html", context | _labels(request), status=400 if errors else 200)


@page("organiser")
async def partner_update(request: web.Request, who: Account) -> web.StreamResponse:
    partner = await _partner(request)
    values, errors = await _form(request)
    if errors:
        return await _detail_page(request, partner, values, errors)
    await _repo(request).update(partner.id, values["name"], values["kind"], values["district"] or None)
    await audit(request, "partner.update", partner.code, values)
    raise web.HTTPSeeOther(keep_language(request, f"/admin/partners/{partner.id}"))


@page("viewer")
async def partner_qr(request: web.Request, who: Account) -> web.StreamResponse:
    partner = await _partner(request)
    entry = entry_points(request.app[DASHBOARD].kz.settings, partner).get(request.match_info["kind"])
    if entry is None:
        raise web.HTTPNotFound(text=gettext(request, "This channel is not set up."))
    body = qr_svg(entry.content, title=entry.link or entry.keyword)
    return web.Response(
        body=body,
        content_type="image/svg+xml",
        headers={
            "Cache-Control": "private, no-store",
            "Content-Disposition": f'inline; filename="kiezstimme-{partner.code}-{entry.kind}.svg"',
        },
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/partners", partner_list)
    app.router.add_post("/admin/partners", partner_create)
    app.router.add_get(r"/admin/partners/{id:\d{1,12}}", partner_detail)
    app.router.add_post(r"/admin/partners/{id:\d{1,12}}", partner_update)
    app.router.add_get(r"/admin/partners/{id:\d{1,12}}/qr/{kind:[a-z_]{1,16}}.svg", partner_qr)
