"""The dashboard's exports: the same records as ``python -m bot export`` (INTERFACES.md), as
downloads for any signed-in account; every download is written to the audit log."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from bot.participation.export import Labels, export_feedback, export_ideas
from bot.storage.accounts import Account
from bot.web.admin.core import DASHBOARD, N_, audit, page, render

CONTENT_TYPES = {"csv": "text/csv", "json": "application/json"}


@dataclass(frozen=True)
class Download:
    """One file on the export page: its route, what it holds and in which format."""

    what: str  # ideas | feedback
    fmt: str  # csv | json | adhocracy4 | decidim
    path: str
    title: str  # msgid
    explanation: str  # msgid

    @property
    def media(self) -> str:
        return "csv" if self.fmt == "csv" else "json"


DOWNLOADS = (
    Download(
        "ideas",
        "csv",
        "/admin/export/ideas.csv",
        N_("Ideas as a spreadsheet (CSV)"),
        N_("Every idea with topic and district as ids and as labels; opens in Excel and LibreOffice."),
    ),
    Download(
        "ideas",
        "json",
        "/admin/export/ideas.json",
        N_("Ideas as JSON"),
        N_("The same records for programs: a list of objects, one per idea."),
    ),
    Download(
        "feedback",
        "csv",
        "/admin/export/feedback.csv",
        N_("Feedback as a spreadsheet (CSV)"),
        N_("Every rating of a statement of the draft, with its comment and the statement's text."),
    ),
    Download(
        "feedback",
        "json",
        "/admin/export/feedback.json",
        N_("Feedback as JSON"),
        N_("The same ratings for programs: a list of objects, one per resident and statement."),
    ),
    Download(
        "ideas",
        "adhocracy4",
        "/admin/export/ideas-adhocracy4.json",
        N_("Ideas for mein.berlin (adhocracy4)"),
        N_("New and approved ideas in the fields of an adhocracy4 idea: title, description, category, place."),
    ),
    Download(
        "ideas",
        "decidim",
        "/admin/export/ideas-decidim.json",
        N_("Ideas as Decidim proposals"),
        N_("New and approved ideas in the field names of Decidim's proposals export."),
    ),
)


def filename(download: Download, request: web.Request) -> str:
    """kiezstimme-ideas-2026-11-26.csv: the day of the download in the process's time zone."""
    dash = request.app[DASHBOARD]
    day = dash.now().astimezone(dash.kz.settings.zone).date().isoformat()
    stem = download.path.rsplit("/", 1)[1].rsplit(".", 1)[0]
    return f"kiezstimme-{stem}-{day}.{download.media}"


def _handler(download: Download) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    @page("viewer")
    async def serve(request: web.Request, who: Account) -> web.StreamResponse:
        kz = request.app[DASHBOARD].kz
        labels = Labels.of(kz.flows, kz.catalogs)
        exporter = export_ideas if download.what == "ideas" else export_feedback
        out = io.StringIO(newline="")
        count = await exporter(kz.db, kz.settings, download.fmt, out, labels)
        name = filename(download, request)
        await audit(request, "export", name, {"records": count})
        return web.Response(
            body=out.getvalue().encode("utf-8"),
            content_type=CONTENT_TYPES[download.media],
            charset="utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store",  # residents' texts: never in a shared cache
            },
        )

    return serve


@page("viewer")
async def export_page(request: web.Request, who: Account) -> web.StreamResponse:
    return render(request, "export.html", {"downloads": DOWNLOADS})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/export", export_page)
    for download in DOWNLOADS:
        app.router.add_get(download.path, _handler(download))
