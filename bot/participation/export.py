"""Exports for organisers: pseudonymised, safe to open in a spreadsheet, with the labels of
topics, districts and statements (in the process's default language) beside their ids, and
two import shapes for the platforms a city publishes ideas on: adhocracy4 (mein.berlin) ideas
and Decidim proposals.

No export carries an address, a chat id or a phone number: a resident appears only as their
stable pseudonym (and not at all in the import shapes)."""

from __future__ import annotations

import asyncio
import csv
import html
import json
from dataclasses import dataclass
from typing import Any, TextIO

from bot.config import Settings
from bot.conversation.flows import FlowSet
from bot.conversation.i18n import Catalogs
from bot.storage.contributions import ContributionRepository
from bot.storage.db import Database

# The contract's fields first, in the contract's order (INTERFACES.md, "Export record");
# the labels follow at the end, so a spreadsheet that reads columns by position still works.
IDEA_FIELDS = (
    "reference",
    "text",
    "topic",
    "district",
    "language",
    "channel",
    "created_at",
    "status",
    "media",
    "resident",
    "topic_label",
    "district_label",
)
FEEDBACK_FIELDS = (
    "statement",
    "rating",
    "comment",
    "media",
    "language",
    "channel",
    "created_at",
    "updated_at",
    "resident",
    "statement_label",
    "rating_label",
)
FORMATS = ("csv", "json", "adhocracy4", "decidim")  # the last two: ideas only, JSON

# A cell a spreadsheet would run as a formula (CSV injection, OWASP): these first characters,
# their full-width forms (Excel folds them), and any of them behind spaces or invisible marks.
_FORMULA_START = frozenset("=+-@\t\r|;\uff1d\uff0b\uff0d\uff20")
_INVISIBLE = " \u00a0\u200b\u200c\u200d\u2060\ufeff"
_NEVER_FIRST = frozenset("\u200b\u200c\u200d\u2060\ufeff")  # a cell never starts with one innocently

# our moderation status -> adhocracy4's moderator_status / Decidim's state (hidden and spam
# are not published, so the import shapes leave them out)
A4_STATUS = {"new": None, "approved": "CONSIDERATION"}
DECIDIM_STATE = {"new": "not_answered", "approved": "evaluating"}
PUBLISHABLE = tuple(A4_STATUS)
TITLE_CHARS = 80  # a4's name holds 120, Decidim's title 150: the first words fit either


def spreadsheet_safe(value: str) -> str:
    """Neutralise cells a spreadsheet would run as a formula (CSV injection): a leading
    apostrophe makes Excel and LibreOffice show the text as it is."""
    if value[:1] in _NEVER_FIRST or value.lstrip(_INVISIBLE)[:1] in _FORMULA_START:
        return "'" + value
    return value


@dataclass(frozen=True)
class Labels:
    """What ids mean, in the process's default language (the first in languages.yaml)."""

    topics: dict[str, str]
    districts: dict[str, str]
    statements: dict[str, str]
    ratings: dict[str, str]
    language: str  # BCP 47 code of the labels

    @classmethod
    def of(cls, flows: FlowSet, catalogs: Catalogs) -> Labels:
        code = flows.default_language.code
        tr = catalogs.get(code)

        def options(kind: str) -> dict[str, str]:
            return {o.id: tr.gettext(o.label) for o in flows.options.get(kind, ())}

        ratings = {
            c.value: tr.gettext(c.label) for n in flows.nodes.values() if n.kind == "rate_statements" for c in n.choices
        }
        return cls(options("topics"), options("districts"), options("statements"), ratings, code)

    @classmethod
    def load(cls, settings: Settings) -> Labels:
        """For a command that has no running bot: read the flows and catalogs."""
        from bot.conversation.flow_files import load_flows

        flows = load_flows(settings.flows_dir, settings.zone)
        return cls.of(flows, Catalogs.load(flows, settings.i18n_dir))


def _label(table: dict[str, str], key: str | None) -> str | None:
    if key is None:
        return None
    return table.get(key, key)  # an id no longer in the flows: the id is its own label


async def idea_records(db: Database, settings: Settings, labels: Labels | None = None) -> list[dict[str, Any]]:
    labels = labels or Labels.load(settings)
    zone = settings.zone
    base = settings.base_url
    rows = await ContributionRepository(db).idea_records()
    return [
        {
            "reference": r.reference,
            "text": r.text,
            "topic": r.topic,
            "district": r.district,
            "language": r.language,
            "channel": r.channel,
            "created_at": r.created_at.astimezone(zone).isoformat(),
            "status": r.status,
            "media": [f"{base}/admin/media/{r.reference}/{i}" for i, _ in enumerate(r.media or [])],
            "resident": r.pseudonym,  # None: the resident was erased and the idea kept as anonymous text
            "topic_label": _label(labels.topics, r.topic),
            "district_label": _label(labels.districts, r.district),
        }
        for r in rows
    ]


async def feedback_records(db: Database, settings: Settings, labels: Labels | None = None) -> list[dict[str, Any]]:
    labels = labels or Labels.load(settings)
    zone = settings.zone
    base = settings.base_url
    rows = await ContributionRepository(db).feedback_records()
    return [
        {
            "statement": r.statement,
            "rating": r.rating,
            "comment": r.comment,
            "media": [f"{base}/admin/media/feedback-{r.id}/{i}" for i, _ in enumerate(r.media or [])],
            "language": r.language,
            "channel": r.channel,
            "created_at": r.created_at.astimezone(zone).isoformat(),  # the first rating
            "updated_at": r.updated_at.astimezone(zone).isoformat(),  # the current one (or its comment)
            "resident": r.pseudonym,
            "statement_label": _label(labels.statements, r.statement),
            "rating_label": _label(labels.ratings, r.rating),
        }
        for r in rows
    ]


# --- the import shapes --------------------------------------------------------------------------


def title_of(text: str, fallback: str) -> str:
    """The first words of an idea, at most TITLE_CHARS characters (an ellipsis if cut)."""
    words = " ".join(text.split())
    if not words:
        return fallback
    if len(words) <= TITLE_CHARS:
        return words
    cut = words[: TITLE_CHARS - 1].rsplit(" ", 1)[0] or words[: TITLE_CHARS - 1]
    return cut + "…"


def html_paragraph(text: str) -> str:
    """Residents' text as the rich-text HTML both platforms store: escaped, in one <p>."""
    return "<p>" + html.escape(text.strip()).replace("\n", "<br>") + "</p>"


def adhocracy4_ideas(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """adhocracy4 / mein.berlin ideas (``meinberlin_ideas.Idea``'s fields): name, description,
    category, point_label, created, moderator_status; plus our reference, language and channel."""
    return [
        {
            "name": title_of(r["text"], f"{r['topic_label']} ({r['reference']})"),
            "description": html_paragraph(r["text"]),
            "category": r["topic_label"],
            "point_label": r["district_label"],
            "created": r["created_at"],
            "moderator_status": A4_STATUS[r["status"]],
            "reference": r["reference"],
            "language": r["language"],
            "channel": r["channel"],
        }
        for r in records
        if r["status"] in PUBLISHABLE
    ]


def decidim_proposals(records: list[dict[str, Any]], labels_language: str) -> list[dict[str, Any]]:
    """Decidim proposals in the field names of Decidim's own proposals export
    (``Decidim::Proposals::ProposalSerializer``): translatable fields are objects keyed by
    locale, the category is the topic and the scope the district."""
    out = []
    for number, r in enumerate(records, 1):
        if r["status"] not in PUBLISHABLE:
            continue
        lang = r["language"]
        out.append(
            {
                "id": number,
                "category": {"id": r["topic"], "name": {labels_language: r["topic_label"]}},
                "scope": {
                    "id": r["district"],
                    "name": {labels_language: r["district_label"]} if r["district"] else {},
                },
                "title": {lang: title_of(r["text"], f"{r['topic_label']} ({r['reference']})")},
                "body": {lang: html_paragraph(r["text"])},
                "state": DECIDIM_STATE[r["status"]],
                "reference": r["reference"],
                "answer": {},
                "supports": 0,
                "endorsements": 0,
                "comments": 0,
                "attachments": len(r["media"]),
                "published_at": r["created_at"],
                "channel": r["channel"],
            }
        )
    return out


# --- writing -----------------------------------------------------------------------------------


def write_records(records: list[dict[str, Any]], fields: tuple[str, ...], fmt: str, out: TextIO) -> int:
    if fmt == "json":
        json.dump(records, out, ensure_ascii=False, indent=2)
        out.write("\n")
    else:
        out.write("\ufeff")  # UTF-8 BOM so Excel reads umlauts and Arabic correctly
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\r\n")
        writer.writeheader()
        for record in records:
            row = dict(record)
            row["media"] = " ".join(record["media"])
            writer.writerow(
                {k: spreadsheet_safe(v) if isinstance(v, str) else ("" if v is None else v) for k, v in row.items()}
            )
    return len(records)


async def export_ideas(db: Database, settings: Settings, fmt: str, out: TextIO, labels: Labels | None = None) -> int:
    """Every idea as CSV or JSON; ``adhocracy4`` and ``decidim``: the published-to-be ones
    (new and approved) in that platform's import shape, as JSON. The number written.
    Written in a thread: thousands of records are CPU work the web process's loop must not wait on."""
    labels = labels or Labels.load(settings)
    records = await idea_records(db, settings, labels)
    if fmt == "adhocracy4":
        return await asyncio.to_thread(write_records, adhocracy4_ideas(records), (), "json", out)
    if fmt == "decidim":
        return await asyncio.to_thread(write_records, decidim_proposals(records, labels.language), (), "json", out)
    return await asyncio.to_thread(write_records, records, IDEA_FIELDS, fmt, out)


async def export_feedback(db: Database, settings: Settings, fmt: str, out: TextIO, labels: Labels | None = None) -> int:
    records = await feedback_records(db, settings, labels)
    return await asyncio.to_thread(write_records, records, FEEDBACK_FIELDS, fmt, out)
