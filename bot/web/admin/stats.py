"""The statistics page (``GET /admin/stats``): who takes part, over which channel, in which
language, where they drop out, whom the process reaches compared with the city's population,
what residents think of the draft, and whether reminders and broadcasts arrive — for the whole
process or one phase (``?phase=ID``).

The figures are counted in the database (:mod:`bot.storage.statistics`) and drawn by
:mod:`bot.web.admin.stats_figures`: charts with the same figures as tables beside them.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from bot.participation.reference import REFERENCE_FILE, ReferenceError, ReferenceFigures, load_reference
from bot.storage.accounts import Account
from bot.storage.statistics import Window, collect
from bot.web.admin.core import DASHBOARD, page, render
from bot.web.admin.stats_figures import Words, sections

_reference_cache: dict[tuple[str, float], ReferenceFigures] = {}


def reference_figures(request: web.Request) -> tuple[ReferenceFigures, list[str]]:
    """The organisers' reference figures (read again when the file changes), or none and the
    file's problems — the page then says what is wrong instead of failing."""
    kz = request.app[DASHBOARD].kz
    flows_dir = kz.settings.flows_dir
    path = flows_dir / REFERENCE_FILE
    key = (str(path), path.stat().st_mtime if path.exists() else 0.0)
    if key not in _reference_cache:
        try:
            _reference_cache[key] = load_reference(flows_dir, kz.flows)
        except ReferenceError as exc:
            return ReferenceFigures(), exc.problems
    return _reference_cache[key], []


def window_of(request: web.Request) -> tuple[Window, str]:
    """The phase chosen in the filter (``?phase=ID``), or everything."""
    kz = request.app[DASHBOARD].kz
    phase = kz.flows.process.phase(request.query.get("phase", ""))
    if phase is None:
        return Window(), ""
    return Window(phase.starts, phase.ends + kz.flows.process.grace), phase.id


@page("viewer")
async def stats_page(request: web.Request, who: Account) -> web.StreamResponse:
    kz = request.app[DASHBOARD].kz
    words = Words(request)
    window, phase_id = window_of(request)
    stats = await collect(kz.db, window)
    reference, problems = reference_figures(request)
    phases = [(p.id, words.flows_tr.gettext(p.name)) for p in kz.flows.process.phases]
    # drawing the charts takes CPU (about 90 ms for the page): in a thread, so webhooks are
    # acknowledged meanwhile
    drawn = await asyncio.to_thread(sections, words, stats, reference, kz.settings.zone)
    return render(
        request,
        "stats.html",
        {
            "sections": drawn,
            "phases": phases,
            "phase": phase_id,
            "reference_problems": problems,
        },
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/stats", stats_page)
