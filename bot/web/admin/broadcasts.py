"""The dashboard's broadcasts: compose per-language texts side by side with audience filters,
a preview (audience per channel and language, each channel's rendering, SMS segments and cost,
languages without a text flagged), confirmation, then progress and cancelling — through the
same service as ``python -m bot broadcast`` (:mod:`bot.participation.broadcasts`).

A double submit of one preview sends once: the compose page hands out a draft token that,
with the texts, audience and send time, makes the broadcast's idempotency key."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web
from babel.numbers import format_currency, format_decimal
from multidict import MultiDictProxy

from bot.app import Kiezstimme
from bot.conversation.flows import Language
from bot.delivery.outbox import Audience
from bot.participation import broadcasts as bc
from bot.storage.accounts import Account
from bot.storage.audience import AudienceRepository
from bot.storage.broadcasts import BroadcastRecord, BroadcastRepository, known_sources
from bot.web.admin.core import DASHBOARD, N_, channel_label, gettext, page, render, translator, ui_language, wants_json
from channels.registry import capabilities

FILTERS = ("language", "channel", "district", "topic", "source")  # the form's names (INTERFACES.md)
FILTER_LABELS = {
    "language": N_("Language"),
    "channel": N_("Channel"),
    "district": N_("District (of their ideas)"),
    "topic": N_("Topic (of their ideas)"),
    "source": N_("Came through (campaign or partner)"),
}
STAGE_LABELS = {
    "queued": N_("queued"),
    "sent": N_("sent"),
    "delivered": N_("delivered"),
    "failed": N_("failed"),
    "in web chat": N_("waiting in the web chat"),
    "cancelled": N_("cancelled"),
}
STAGE_ORDER = tuple(STAGE_LABELS)
MAX_TEXT = 4000  # characters a text may have (Telegram takes 4096; SMS splits it into parts)
EASY_SUFFIX = "-x-ls"  # Leichte Sprache (BCP 47 private use): never replaced by standard German unasked


def _kz(request: web.Request) -> Kiezstimme:
    return request.app[DASHBOARD].kz


def _local(kz: Kiezstimme, when: datetime | None) -> str:
    return "" if when is None else f"{when.astimezone(kz.settings.zone):%Y-%m-%d %H:%M}"


# --- the form ---------------------------------------------------------------------------------


@dataclass
class Draft:
    """What the organiser entered (as typed, for showing again) and what it means."""

    typed: dict[str, str]  # language code -> text as typed
    filters: dict[str, list[str]]  # form name -> chosen values
    fallback: str = ""
    send_at_typed: str = ""
    send_at: datetime | None = None
    token: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def texts(self) -> dict[str, str]:
        return {code: text.strip() for code, text in self.typed.items() if text.strip()}

    @property
    def audience(self) -> Audience:
        f = self.filters
        return Audience(
            channels=tuple(f["channel"]),
            languages=tuple(f["language"]),
            districts=tuple(f["district"]),
            topics=tuple(f["topic"]),
            sources=tuple(f["source"]),
        )

    def key(self) -> str:
        salt = f"{self.token}|{self.send_at.isoformat() if self.send_at else 'now'}"
        return bc.broadcast_key(self.texts, self.fallback or None, self.audience, salt=salt)

    def hidden(self) -> list[tuple[str, str]]:
        """Every field as (name, value), for the preview's form to repeat."""
        pairs = [(f"text-{code}", text) for code, text in self.typed.items() if text]
        pairs += [(name, value) for name in FILTERS for value in self.filters[name]]
        pairs += [("fallback", self.fallback), ("send_at", self.send_at_typed), ("draft", self.token)]
        return pairs


async def _choices(request: web.Request) -> dict[str, list[tuple[str, str]]]:
    """Each filter's possible values as (value, label)."""
    kz = _kz(request)
    tr = kz.catalogs.get(ui_language(request))
    return {
        "language": [(lang.code, lang.name) for lang in kz.flows.languages],
        "channel": [(c, channel_label(request, c)) for c in kz.channels.bulk_targets()],
        "district": [(o.id, tr.gettext(o.label)) for o in kz.flows.options.get("districts", ()) if o.id != "none"],
        "topic": [(o.id, tr.gettext(o.label)) for o in kz.flows.options.get("topics", ())],
        "source": await known_sources(kz.db),
    }


def _read_draft(request: web.Request, form: MultiDictProxy[Any], choices: dict[str, list[tuple[str, str]]]) -> Draft:
    kz = _kz(request)
    typed = {
        lang.code: str(form.get(f"text-{lang.code}", "")).replace("\r\n", "\n")[: MAX_TEXT * 4]
        for lang in kz.flows.languages
    }
    filters: dict[str, list[str]] = {}
    unknown: list[str] = []  # never dropped quietly: that would widen the audience
    for name in FILTERS:
        allowed = {value for value, _ in choices[name]}
        given = list(dict.fromkeys(str(x)[:100] for x in form.getall(name, [])))
        filters[name] = [v for v in given if v in allowed]
        unknown += [v for v in given if v not in allowed]
    fallback = str(form.get("fallback", ""))
    draft = Draft(
        typed=typed,
        filters=filters,
        fallback=fallback if kz.flows.language(fallback) else "",
        send_at_typed=str(form.get("send_at", "")).strip()[:32],
        token=str(form.get("draft", ""))[:64] or secrets.token_urlsafe(12),
    )
    if not draft.texts:
        draft.errors.append(gettext(request, "Write the text in at least one language."))
    if unknown:
        draft.errors.append(gettext(request, "Unknown audience filter: {values}", values=", ".join(unknown)))
    for lang in kz.flows.languages:
        if len(draft.texts.get(lang.code, "")) > MAX_TEXT:
            draft.errors.append(
                gettext(
                    request, "The text in {language} is longer than {max} characters.", language=lang.name, max=MAX_TEXT
                )
            )
    if draft.fallback and draft.fallback not in draft.texts:
        draft.errors.append(gettext(request, "The fallback language has no text."))
    if draft.send_at_typed:
        try:
            draft.send_at = datetime.fromisoformat(draft.send_at_typed).replace(tzinfo=kz.settings.zone)
        except ValueError:
            draft.errors.append(gettext(request, "The send time is not a date and time."))
    return draft


def _languages(kz: Kiezstimme) -> list[Language]:
    return list(kz.flows.languages)


async def _compose(request: web.Request, draft: Draft | None, status: int = 200) -> web.Response:
    kz = _kz(request)
    choices = await _choices(request)
    if draft is None:
        draft = Draft(typed={}, filters={name: [] for name in FILTERS}, token=secrets.token_urlsafe(12))
    channels = kz.channels.bulk_targets()
    per_language: dict[str, int] = {}
    for _channel, code, n in (await AudienceRepository(kz.db).counts(Audience(), channels, {}))[0]:
        per_language[code or "?"] = per_language.get(code or "?", 0) + n
    return render(
        request,
        "broadcast_new.html",
        {
            "languages": _languages(kz),
            "choices": choices,
            "draft": draft,
            "filters": FILTERS,
            "filter_labels": FILTER_LABELS,
            "reach": per_language,
            "zone": kz.settings.timezone,
        },
        status=status,
    )


# --- the preview --------------------------------------------------------------------------------


def _money(request: web.Request, amount: float) -> str:
    return format_currency(amount, _kz(request).settings.currency, locale=ui_language(request))


def _flags(request: web.Request, preview: bc.DryRun, draft: Draft) -> list[dict[str, Any]]:
    """Languages that have residents in the audience but no text of their own."""
    kz = _kz(request)
    names = {lang.code: lang.name for lang in kz.flows.languages}
    flags: list[dict[str, Any]] = []
    replaced: dict[str, int] = {}
    for row in preview.rows:
        if row["text_language"] != row["language"]:
            replaced[row["language"]] = replaced.get(row["language"], 0) + row["residents"]
    for code, n in sorted(preview.without_text.items()):
        flags.append({"code": code, "name": names.get(code, code), "residents": n, "fallback": None})
    for code, n in sorted(replaced.items()):
        fallback = names.get(draft.fallback, draft.fallback)
        flags.append({"code": code, "name": names.get(code, code), "residents": n, "fallback": fallback})
    for flag in flags:
        flag["easy"] = flag["code"].endswith(EASY_SUFFIX)
    return flags


def _renderings(request: web.Request, preview: bc.DryRun, draft: Draft) -> list[dict[str, Any]]:
    """Per channel of the audience: each text as that channel sends it, and for channels with
    a reply window (WhatsApp) who is outside it and whether a template reaches them."""
    kz = _kz(request)
    names = {lang.code: lang for lang in kz.flows.languages}
    out: list[dict[str, Any]] = []
    for channel in dict.fromkeys(row["channel"] for row in preview.rows):
        caps = capabilities(channel)
        rows = [r for r in preview.rows if r["channel"] == channel]
        texts = []
        for text_lang in dict.fromkeys(r["text_language"] for r in rows):
            lang = names.get(text_lang)
            texts.append(
                {
                    "code": text_lang,
                    "name": lang.name if lang else text_lang,
                    "dir": lang.direction if lang else "ltr",
                    "parts": bc.rendering(channel, draft.texts[text_lang]),
                }
            )
        window = [
            {"name": names[r["language"]].name if r["language"] in names else r["language"], **r}
            for r in rows
            if "outside_window" in r
        ]
        out.append(
            {
                "channel": channel,
                "label": channel_label(request, channel),
                "billed": caps.units is not None,
                "texts": texts,
                "window": window,
                "window_hours": int(caps.reply_window.total_seconds() // 3600) if caps.reply_window else 0,
            }
        )
    return out


def _costs(request: web.Request, preview: bc.DryRun) -> tuple[list[dict[str, Any]], int, float]:
    """SMS segments and cost per language of the residents, and in all."""
    names = {lang.code: lang.name for lang in _kz(request).flows.languages}
    per: dict[str, dict[str, Any]] = {}
    for row in preview.rows:
        if "cost" not in row:
            continue
        entry = per.setdefault(row["language"], {"name": names.get(row["language"], row["language"]), "segments": 0})
        entry["segments"] += row["segments"] * row["residents"]
        entry["cost"] = entry.get("cost", 0.0) + row["cost"]
    for entry in per.values():
        entry["money"] = _money(request, entry["cost"])
    segments = sum(e["segments"] for e in per.values())
    cost = round(sum(e["cost"] for e in per.values()), 2)
    return list(per.values()), segments, cost


async def _preview(request: web.Request, draft: Draft) -> web.Response:
    kz = _kz(request)
    preview = await bc.dry_run(kz, draft.texts, draft.fallback or None, draft.audience, kz.settings.sms_price)
    names = {lang.code: lang.name for lang in kz.flows.languages}
    rows = [
        {
            **r,
            "name": names.get(r["language"], r["language"]),
            "text_name": names.get(r["text_language"], r["text_language"]),
            "label": channel_label(request, r["channel"]),
            "money": _money(request, r["cost"]) if "cost" in r else "",
        }
        for r in preview.rows
    ]
    costs, segments, cost = _costs(request, preview)
    languages = len({r["language"] for r in preview.rows})
    locale = ui_language(request)
    return render(
        request,
        "broadcast_preview.html",
        {
            "draft": draft,
            "rows": rows,
            "flags": _flags(request, preview, draft),
            "renderings": _renderings(request, preview, draft),
            "costs": costs,
            "total": preview.total,
            "numbers": {
                "residents": format_decimal(preview.total, locale=locale),
                "languages": format_decimal(languages, locale=locale),
                "segments": format_decimal(segments, locale=locale),
                "cost": _money(request, cost),
            },
            "send_at": _local(kz, draft.send_at),
            "fallback_name": names.get(draft.fallback, ""),
            "text_names": [names[c] for c in draft.texts],
        },
    )


# --- handlers -----------------------------------------------------------------------------------


@page("organiser")
async def compose(request: web.Request, who: Account) -> web.StreamResponse:
    return await _compose(request, None)


@page("organiser")
async def submit(request: web.Request, who: Account) -> web.StreamResponse:
    """Without confirm=yes: the preview. With it: record, queue (now or when due), 303 to progress."""
    kz = _kz(request)
    form = await request.post()
    draft = _read_draft(request, form, await _choices(request))
    now = kz.service.clock()
    confirmed = form.get("confirm") == "yes"
    if draft.send_at is not None and draft.send_at <= now and not confirmed:
        draft.errors.append(gettext(request, "The send time has passed."))
    if draft.errors or form.get("edit") == "yes":
        return await _compose(request, draft, status=400 if draft.errors else 200)
    if not confirmed:
        return await _preview(request, draft)
    send_at = draft.send_at if draft.send_at is not None and draft.send_at > now else None
    broadcast_id, _new = await bc.record(
        kz,
        key=draft.key(),
        texts=draft.texts,
        fallback=draft.fallback or None,
        audience=draft.audience,
        created_by=who.email,
        send_at=send_at,
    )
    if send_at is None:
        await bc.queue_due(kz)  # this one, and any other whose time has come
    raise web.HTTPSeeOther(f"/admin/broadcasts/{broadcast_id}?lang={ui_language(request)}")


def _summary(request: web.Request, record: BroadcastRecord) -> dict[str, Any]:
    kz = _kz(request)
    names = {lang.code: lang.name for lang in kz.flows.languages}
    audience = record.audience
    parts = []
    for key, label in (
        ("languages", N_("languages")),
        ("channels", N_("channels")),
        ("districts", N_("districts")),
        ("topics", N_("topics")),
        ("sources", N_("sources")),
    ):
        values = audience.get(key) or []
        if values:
            shown = [names.get(v, v) if key == "languages" else v for v in values]
            parts.append(f"{gettext(request, label)}: {', '.join(shown)}")
    return {
        "record": record,
        "languages": [names.get(code, code) for code in record.texts],
        "audience": "; ".join(parts) or gettext(request, "everyone who opted in"),
        "created": _local(kz, record.created_at),
        "send_at": _local(kz, record.send_at),
        "cancelled": _local(kz, record.cancelled_at),
    }


@page("organiser")
async def listing(request: web.Request, who: Account) -> web.StreamResponse:
    kz = _kz(request)
    items = []
    for record in await BroadcastRepository(kz.db).newest():
        progress = await bc.stages(kz, record.key)
        items.append({**_summary(request, record), "progress": progress})
    return render(request, "broadcasts.html", {"items": items, "stage_labels": STAGE_LABELS})


async def _record(request: web.Request) -> BroadcastRecord:
    found = await BroadcastRepository(_kz(request).db).get(int(request.match_info["id"]))
    if found is None:
        raise web.HTTPNotFound(text=gettext(request, "There is no such broadcast."))
    return found


@page("organiser")
async def detail(request: web.Request, who: Account) -> web.StreamResponse:
    kz = _kz(request)
    record = await _record(request)
    progress = await bc.stages(kz, record.key)
    running = record.cancelled_at is None and record.queued_at is not None and not progress.finished
    if wants_json(request):
        return web.json_response(
            {
                "stages": progress.stages,
                "channels": progress.channels,
                "finished": not running,
                "scheduled": record.scheduled,
            },
            headers={"Cache-Control": "no-store"},
        )
    channels = [
        {"label": channel_label(request, channel), "channel": channel, "stages": stages}
        for channel, stages in sorted(progress.channels.items())
    ]
    tr = translator(request)
    return render(
        request,
        "broadcast.html",
        {
            **_summary(request, record),
            "progress": progress,
            "channels": channels,
            "running": running,
            "cancellable": record.cancelled_at is None and (record.scheduled or progress.stoppable > 0),
            "texts": [
                {
                    "code": code,
                    "name": lang.name if lang else code,
                    "dir": lang.direction if lang else "auto",
                    "text": text,
                }
                for code, text in record.texts.items()
                for lang in [kz.flows.language(code)]
            ],
            "stage_order": STAGE_ORDER,
            "stage_labels": {k: tr.gettext(v) for k, v in STAGE_LABELS.items()},
        },
    )


@page("organiser")
async def cancel(request: web.Request, who: Account) -> web.StreamResponse:
    record = await _record(request)
    await bc.cancel(_kz(request), record.id, who.email)
    raise web.HTTPSeeOther(f"/admin/broadcasts/{record.id}?lang={ui_language(request)}")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/broadcasts", listing)
    app.router.add_get("/admin/broadcasts/new", compose)
    app.router.add_post("/admin/broadcasts", submit)
    app.router.add_get(r"/admin/broadcasts/{id:\d{1,12}}", detail)
    app.router.add_post(r"/admin/broadcasts/{id:\d{1,12}}/cancel", cancel)
