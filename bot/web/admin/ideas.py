"""Moderation: the ideas (list with search and filters, detail with voice notes and photos,
status with a public note told to the resident, an internal note, bulk changes), residents'
media served only to a session, and the feedback comments on the draft's statements.

Every change is written to the audit log; residents' text is only ever escaped data."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from bot.participation.reminders import set_idea_status
from bot.storage.accounts import Account
from bot.storage.moderation import STATUSES, FeedbackFilter, IdeaFilter, ModerationRepository
from bot.values import MEDIA_TYPES
from bot.web.admin.core import DASHBOARD, audit, gettext, keep_language, page, render
from bot.web.admin.ideas_labels import Labels

PER_PAGE = 50
IDEA_FILTERS = ("q", "phase", "topic", "district", "language", "channel", "status", "source", "media")
FEEDBACK_FILTERS = ("q", "statement", "rating", "status", "language", "channel")
_KNOWN_MIMES = {mime for types in MEDIA_TYPES.values() for mime in types}


def _repo(request: web.Request) -> ModerationRepository:
    return ModerationRepository(request.app[DASHBOARD].kz.db)


def _number(raw: object, digits: int = 17) -> int | None:
    """A whole number written in ASCII digits (``"²"`` is a digit to Python, not to int())."""
    text = str(raw)
    return int(text) if text.isascii() and text.isdigit() and len(text) <= digits else None


def _page_number(request: web.Request) -> int:
    return max(1, min(_number(request.query.get("page", "1"), 7) or 1, 1_000_000))


def _kept(query: Any, names: tuple[str, ...]) -> dict[str, str]:
    """The filters of a query string that are set (``lang`` too), to repeat in links."""
    return {n: str(query.get(n, ""))[:200] for n in (*names, "lang") if query.get(n)}


def _pager(request: web.Request, names: tuple[str, ...], total: int, number: int) -> dict[str, Any]:
    pages = max(1, -(-total // PER_PAGE))
    kept = _kept(request.query, names)

    def link(n: int) -> str:
        return f"{request.path}?{urlencode({**kept, 'page': n})}"

    return {
        "number": number,
        "pages": pages,
        "total": total,
        "previous": link(number - 1) if number > 1 else None,
        "next": link(number + 1) if number < pages else None,
    }


def _count(raw: str) -> int | None:
    """A count from a redirect's query (anything else is ignored)."""
    return _number(raw, 6)


def _back(form: Any, names: tuple[str, ...]) -> str:
    """The list's query string a bulk form came from, rebuilt from known names only."""
    pairs = dict(parse_qsl(str(form.get("back", ""))[:2000]))
    return urlencode({n: v for n, v in pairs.items() if n in (*names, "page", "lang")})


# --- ideas --------------------------------------------------------------------------------------


def _idea_filter(request: web.Request) -> IdeaFilter:
    q = request.query
    kz = request.app[DASHBOARD].kz
    phase = next((p for p in kz.flows.process.phases if p.id == q.get("phase")), None)
    media = q.get("media", "")
    return IdeaFilter(
        q=q.get("q", "")[:200],
        since=phase.starts if phase else None,
        until=phase.ends if phase else None,
        topic=q.get("topic", ""),
        district=q.get("district", ""),
        language=q.get("language", ""),
        channel=q.get("channel", ""),
        status=q.get("status", ""),
        source=q.get("source", ""),
        has_media=True if media == "yes" else False if media == "no" else None,
    )


def _local(request: web.Request, when: Any) -> str:
    zone = request.app[DASHBOARD].kz.settings.zone
    return when.astimezone(zone).strftime("%Y-%m-%d %H:%M") if when else ""


def _media_items(owner: str, media: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Links to a contribution's files, numbered per kind (voice note 1, photo 1, ...)."""
    seen: dict[str, int] = {}
    items = []
    for i, item in enumerate(media or []):
        kind = str(item.get("kind", ""))
        seen[kind] = seen.get(kind, 0) + 1
        items.append({"url": f"/admin/media/{owner}/{i}", "kind": kind, "number": seen[kind]})
    return items


def _idea_view(request: web.Request, labels: Labels, row: Any) -> dict[str, Any]:
    return {
        "reference": row.reference,
        "text": row.text,
        "topic": labels.topic(row.topic),
        "district": labels.district(row.district),
        "language": labels.language(row.language),
        "language_code": row.language,
        "channel": labels.channel(row.channel),
        "status": row.status,
        "status_label": labels.status(row.status),
        "created": _local(request, row.created_at),
        "moderated": _local(request, row.moderated_at),
        "public_note": row.public_note or "",
        "internal_note": row.internal_note or "",
        "source": row.source or "",
        "media": _media_items(row.reference, row.media),
    }


@page("viewer")
async def ideas_list(request: web.Request, who: Account) -> web.StreamResponse:
    labels = Labels(request)
    number = _page_number(request)
    listing = await _repo(request).ideas(_idea_filter(request), PER_PAGE, (number - 1) * PER_PAGE)
    context = {
        "ideas": [_idea_view(request, labels, row) for row in listing.rows],
        "pager": _pager(request, IDEA_FILTERS, listing.total, number),
        "filters": {n: request.query.get(n, "") for n in IDEA_FILTERS},
        "choices": {
            "phase": labels.phases(),
            "topic": labels.topics(),
            "district": labels.districts(),
            "language": labels.languages(),
            "channel": labels.channels(),
            "status": labels.statuses(),
            "source": [(s, s) for s in await _repo(request).sources()],
        },
        "statuses": labels.statuses(),
        "back": urlencode(_kept(request.query, (*IDEA_FILTERS, "page"))),
        "changed": _count(request.query.get("changed", "")),
    }
    return render(request, "ideas.html", context)


async def _moderate(
    request: web.Request, reference: str, status: str, notify: bool, note: str | None, internal: str | None
) -> int | None:
    """Change one idea, audited; the notices queued (None: no such idea)."""
    kz = request.app[DASHBOARD].kz
    old = (await _repo(request).idea_statuses([reference])).get(reference.upper())
    if old is None:
        return None
    _found, notices = await set_idea_status(
        kz, reference, status, kz.service.clock(), notify=notify, note=note, internal_note=internal
    )
    detail: dict[str, Any] = {"old": old, "new": status, "notified": notices > 0}
    if note is not None:
        detail["public_note"] = note.strip()
    if internal is not None:
        detail["internal_note"] = internal.strip()
    await audit(request, "idea-status", reference.upper(), detail)
    return notices


@page("moderator")
async def ideas_bulk(request: web.Request, who: Account) -> web.StreamResponse:
    form = await request.post()
    status = str(form.get("status", ""))
    if status not in STATUSES:
        raise web.HTTPBadRequest(text=gettext(request, "Please choose a status."))
    references = [str(r) for r in form.getall("reference", [])][:PER_PAGE]
    notify = form.get("notify") == "on"
    changed = 0
    for reference in references:
        if await _moderate(request, reference, status, notify, None, None) is not None:
            changed += 1
    back = _back(form, IDEA_FILTERS)
    raise web.HTTPSeeOther(f"/admin/ideas?{back}{'&' if back else ''}changed={changed}")


@page("viewer")
async def idea_detail(request: web.Request, who: Account) -> web.StreamResponse:
    row = await _repo(request).idea(request.match_info["reference"])
    if row is None:
        return render(request, "idea-missing.html", {"reference": request.match_info["reference"]}, status=404)
    labels = Labels(request)
    saved = request.query.get("saved", "")
    context = {
        "idea": _idea_view(request, labels, row),
        "statuses": labels.statuses(),
        "saved": saved,
        "notified": request.query.get("notified", ""),
    }
    return render(request, "idea.html", context)


@page("moderator")
async def idea_moderate(request: web.Request, who: Account) -> web.StreamResponse:
    reference = request.match_info["reference"].upper()
    form = await request.post()
    status = str(form.get("status", ""))
    if status not in STATUSES:
        raise web.HTTPBadRequest(text=gettext(request, "Please choose a status."))
    note = str(form.get("note", ""))[:1000]
    internal = str(form.get("internal_note", ""))[:4000]
    notices = await _moderate(request, reference, status, form.get("notify") == "on", note, internal)
    if notices is None:
        return render(request, "idea-missing.html", {"reference": reference}, status=404)
    raise web.HTTPSeeOther(keep_language(request, f"/admin/ideas/{reference}", saved="1", notified=str(notices)))


# --- residents' media ------------------------------------------------------------------------------


def _media_response(request: web.Request, media: list[dict[str, Any]] | None) -> web.StreamResponse:
    """The ``index``-th file of a stored media list — looked up, never a path from the request."""
    index = _number(request.match_info["index"], 4)
    if media is None or index is None or index >= len(media):
        raise web.HTTPNotFound()
    item = media[index]
    root = Path(request.app[DASHBOARD].kz.settings.media_dir).resolve()
    path = (root / str(item.get("ref", ""))).resolve()
    if not item.get("ref") or not path.is_relative_to(root) or not path.is_file():
        raise web.HTTPNotFound()
    mime = str(item.get("mime", "")).split(";")[0].strip().lower()
    headers = {
        "Content-Type": mime if mime in _KNOWN_MIMES else "application/octet-stream",
        "Content-Disposition": "inline",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }
    return web.FileResponse(path, headers=headers)


@page("viewer")
async def media(request: web.Request, who: Account) -> web.StreamResponse:
    owner = request.match_info["owner"]
    repo = _repo(request)
    if owner.startswith("feedback-"):
        number = _number(owner.removeprefix("feedback-"))
        row = await repo.feedback_item(number) if number is not None else None
    else:
        row = await repo.idea(owner[:16])
    return _media_response(request, list(row.media or []) if row is not None else None)


# --- feedback comments ---------------------------------------------------------------------------------


def _feedback_filter(request: web.Request) -> FeedbackFilter:
    q = request.query
    return FeedbackFilter(
        q=q.get("q", "")[:200],
        statement=q.get("statement", ""),
        rating=q.get("rating", ""),
        status=q.get("status", ""),
        language=q.get("language", ""),
        channel=q.get("channel", ""),
    )


def _feedback_view(request: web.Request, labels: Labels, row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "statement": labels.statement(row.statement),
        "rating": labels.rating(row.rating),
        "comment": row.comment,
        "language": labels.language(row.language),
        "language_code": row.language,
        "channel": labels.channel(row.channel),
        "status": row.status,
        "status_label": labels.status(row.status),
        "updated": _local(request, row.updated_at),
        "internal_note": row.internal_note or "",
        "media": _media_items(f"feedback-{row.id}", row.media),
    }


@page("viewer")
async def feedback_list(request: web.Request, who: Account) -> web.StreamResponse:
    labels = Labels(request)
    number = _page_number(request)
    listing = await _repo(request).feedback(_feedback_filter(request), PER_PAGE, (number - 1) * PER_PAGE)
    context = {
        "comments": [_feedback_view(request, labels, row) for row in listing.rows],
        "pager": _pager(request, FEEDBACK_FILTERS, listing.total, number),
        "filters": {n: request.query.get(n, "") for n in FEEDBACK_FILTERS},
        "choices": {
            "statement": labels.statements(),
            "rating": labels.ratings(),
            "status": labels.statuses(),
            "language": labels.languages(),
            "channel": labels.channels(),
        },
        "statuses": labels.statuses(),
        "back": urlencode(_kept(request.query, (*FEEDBACK_FILTERS, "page"))),
        "changed": _count(request.query.get("changed", "")),
    }
    return render(request, "feedback.html", context)


async def _feedback_change(request: web.Request, ids: list[int], status: str | None, internal: str | None) -> int:
    before = await _repo(request).set_feedback(ids, status, internal)
    for feedback_id, old in before.items():
        detail: dict[str, Any] = {"old": old, "new": status or old}
        if internal is not None:
            detail["internal_note"] = internal.strip()
        await audit(request, "feedback-status", f"feedback-{feedback_id}", detail)
    return len(before)


@page("moderator")
async def feedback_bulk(request: web.Request, who: Account) -> web.StreamResponse:
    form = await request.post()
    status = str(form.get("status", ""))
    if status not in STATUSES:
        raise web.HTTPBadRequest(text=gettext(request, "Please choose a status."))
    ids = [n for n in (_number(i) for i in form.getall("id", [])) if n is not None][:PER_PAGE]
    changed = await _feedback_change(request, ids, status, None)
    back = _back(form, FEEDBACK_FILTERS)
    raise web.HTTPSeeOther(f"/admin/feedback?{back}{'&' if back else ''}changed={changed}")


def _feedback_id(request: web.Request) -> int:
    number = _number(request.match_info["id"])
    if number is None:
        raise web.HTTPNotFound()
    return number


@page("viewer")
async def feedback_detail(request: web.Request, who: Account) -> web.StreamResponse:
    row = await _repo(request).feedback_item(_feedback_id(request))
    if row is None:
        raise web.HTTPNotFound()
    labels = Labels(request)
    context = {
        "comment": _feedback_view(request, labels, row),
        "statuses": labels.statuses(),
        "saved": request.query.get("saved", ""),
    }
    return render(request, "feedback-comment.html", context)


@page("moderator")
async def feedback_moderate(request: web.Request, who: Account) -> web.StreamResponse:
    feedback_id = _feedback_id(request)
    form = await request.post()
    status = str(form.get("status", ""))
    if status not in STATUSES:
        raise web.HTTPBadRequest(text=gettext(request, "Please choose a status."))
    internal = str(form.get("internal_note", ""))[:4000]
    if not await _feedback_change(request, [feedback_id], status, internal):
        raise web.HTTPNotFound()
    raise web.HTTPSeeOther(keep_language(request, f"/admin/feedback/{feedback_id}", saved="1"))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/ideas", ideas_list)
    app.router.add_post("/admin/ideas", ideas_bulk)
    app.router.add_get("/admin/ideas/{reference}", idea_detail)
    app.router.add_post("/admin/ideas/{reference}", idea_moderate)
    app.router.add_get("/admin/media/{owner}/{index}", media)
    app.router.add_get("/admin/feedback", feedback_list)
    app.router.add_post("/admin/feedback", feedback_bulk)
    app.router.add_get("/admin/feedback/{id}", feedback_detail)
    app.router.add_post("/admin/feedback/{id}", feedback_moderate)
