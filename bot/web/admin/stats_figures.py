"""The statistics page's charts and tables: every figure drawn as SVG on the server by pygal
(a maintained chart library: no JavaScript, no CDN, no client build), with the same figures as
an HTML table beside it, labelled in the UI language. Figures about who speaks (actor groups,
age bands) show a number only for groups of at least :data:`MIN_GROUP` residents.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pygal
from aiohttp import web
from babel import Locale
from babel.dates import format_date
from babel.numbers import format_decimal, format_percent
from markupsafe import Markup
from pygal.style import Style

from bot.participation.reference import ReferenceFigures, ReferenceTable
from bot.storage.statistics import Statistics
from bot.web.admin.core import DASHBOARD, N_, channel_label, gettext, ui_language

MIN_GROUP = 5  # a figure about fewer residents than this could single someone out

# Okabe–Ito: told apart with every kind of colour blindness; dark text on white (contrast > 7:1)
STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#1a1a1a",
    foreground_strong="#1a1a1a",
    foreground_subtle="#4d4d4d",
    opacity="1",
    opacity_hover="0.85",
    colors=("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442"),
    font_family="system-ui, sans-serif",
    title_font_size=18,
    label_font_size=13,
    major_label_font_size=13,
    legend_font_size=13,
)
_SCRIPT = re.compile(r"<script\b.*?</script>", re.S)
_STYLE_ATTR = re.compile(r' style="[^"]*"')  # the (empty) tooltip's; CSP allows no style attributes
_SERIES_ID = re.compile(r' id="activate-serie-\d+"')  # the same ids in every chart; only pygal's script used them


# --- what the template shows ------------------------------------------------------------------


@dataclass
class Table:
    caption: str
    head: list[str]
    rows: list[list[str]]
    row_headers: int = 1  # the first cells of a row are its headers (th scope=row)


@dataclass
class Chart:
    slug: str
    title: str
    svg: str
    table: Table

    def markup(self, nonce: str) -> Markup:
        """The SVG inline, its <style> allowed by the page's CSP nonce."""
        return Markup(self.svg.replace("<style", f'<style nonce="{nonce}"'))  # noqa: S704 - pygal's own SVG


@dataclass
class Section:
    slug: str
    heading: str
    intro: list[str] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- words, numbers, charts ---------------------------------------------------------------------


class Words:
    """Labels and numbers in the UI language of one request."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.lang = ui_language(request)
        self.kz = request.app[DASHBOARD].kz
        self.flows_tr = self.kz.catalogs.get(self.lang)  # the flows' labels, translated by the bot's catalogs
        self.locale = Locale.parse(self.lang)

    def _(self, msgid: str, **params: Any) -> str:
        return gettext(self.request, msgid, **params)

    def option(self, kind: str, value: str | None) -> str:
        for option in self.kz.flows.options.get(kind, ()):
            if option.id == value:
                return self.flows_tr.gettext(option.label)
        return value if value else self._("not given")

    def options(self, kind: str, found: Iterable[str | None] = ()) -> list[str | None]:
        """The ids of an option list in the flows' order (without "prefer not to say"), then any
        others that were counted."""
        ids: list[str | None] = [o.id for o in self.kz.flows.options.get(kind, ()) if o.means != "skip"]
        return ids + sorted({f for f in found if f not in ids}, key=lambda v: (v is None, v or ""))

    def language(self, code: str | None) -> str:
        if not code:
            return self._("not chosen yet")
        known = self.kz.flows.language(code)
        if "-x-" in code and known is not None:
            return known.name  # a private-use tag (Leichte Sprache): the flows name it
        return self.locale.languages.get(code.replace("-", "_")) or (known.name if known else code)

    def languages(self, found: Iterable[str | None]) -> list[str | None]:
        ids: list[str | None] = [lang.code for lang in self.kz.flows.languages]
        return ids + sorted({f for f in found if f not in ids}, key=lambda v: (v is None, v or ""))

    def channel(self, name: str | None) -> str:
        if not name:
            return self._("unknown")
        return channel_label(self.request, name)

    def number(self, n: int | float) -> str:
        return format_decimal(n, locale=self.lang)

    def percent(self, part: int | float, whole: int | float) -> str:
        return format_percent(part / whole, "#,##0.0%", locale=self.lang) if whole else "–"

    def share(self, value: float | None) -> str:
        return "–" if value is None else format_percent(value, "#,##0.0%", locale=self.lang)

    def day(self, when: date) -> str:
        return format_date(when, "medium", locale=self.lang)

    def protected(self, n: int) -> str:
        """A count about who speaks: the number only for at least MIN_GROUP residents."""
        return self.number(n) if n >= MIN_GROUP else self._("fewer than {n}", n=MIN_GROUP)


def _short(label: str, most: int = 40) -> str:
    """A long label (a statement) shortened for the chart; the table beside it has it whole."""
    return label if len(label) <= most else label[: most - 1].rstrip() + "…"


def chart(kind: type[Any], title: str, labels: list[str], series: dict[str, list[Any]], **config: Any) -> str:
    """A pygal chart as inline SVG: no script, no style attributes, no shared ids."""
    horizontal = kind in (pygal.HorizontalBar, pygal.HorizontalStackedBar)
    values = [v for vs in series.values() for v in vs if v is not None]
    if values and "y_labels" not in config and all(isinstance(v, int) for v in values):
        stacked = kind in (pygal.StackedBar, pygal.HorizontalStackedBar)
        columns = zip(*series.values(), strict=False)
        top = max(sum(v or 0 for v in c) for c in columns) if stacked else max(values)
        if top <= 10:  # counts of people: whole-number ticks, not 0.2, 0.4, …
            config["y_labels"] = list(range(0, top + 1))
    height = max(320, 140 + 34 * len(labels) + 24 * len(series)) if horizontal else 420
    drawn = kind(
        js=[],
        disable_xml_declaration=True,
        style=STYLE,
        title=title,
        width=800,
        height=height,
        legend_at_bottom=True,
        legend_at_bottom_columns=2 if any(len(name) > 14 for name in series) else 3,  # no overlapping names
        truncate_legend=40,
        truncate_label=-1,  # horizontal charts get labels shortened by _short, with an ellipsis
        x_label_rotation=0 if horizontal or len(labels) <= 8 else 45,
        show_minor_x_labels=len(labels) <= 31,
        x_labels_major_every=max(1, len(labels) // 10) if len(labels) > 31 else None,
        print_zeroes=False,
        **config,
    )
    if horizontal:  # pygal draws the first label at the bottom: top to bottom, as in the table
        labels = [_short(label) for label in reversed(labels)]
        series = {name: list(reversed(values)) for name, values in series.items()}
    drawn.x_labels = labels
    for name, values in series.items():
        drawn.add(name, values)
    svg = drawn.render(is_unicode=True)
    svg = _SERIES_ID.sub("", _STYLE_ATTR.sub("", _SCRIPT.sub("", svg)))
    return svg.replace("<svg ", '<svg role="img" ', 1)


# --- the sections ------------------------------------------------------------------------------

RATINGS = {"agree": N_("agree"), "disagree": N_("disagree"), "unsure": N_("not sure")}
# the outbox's statuses, as the delivery table counts them
STAGES = {
    "pending": "waiting",
    "sending": "waiting",
    "queued": "sent",
    "accepted": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "delivered",
    "failed": "failed",
    "undelivered": "failed",
    "skipped": "not sent",
    "expired": "not sent",
    "cancelled": "not sent",
}


def participation(w: Words, stats: Statistics, zone: ZoneInfo) -> Section:
    per_day: dict[date, Counter[str | None]] = defaultdict(Counter)
    for hour, channel, n in stats.new_residents:
        per_day[hour.astimezone(zone).date()][channel] += n
    days = []
    if per_day:
        first, last = min(per_day), max(per_day)
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    channels = sorted({ch for counts in per_day.values() for ch in counts}, key=lambda c: c or "")
    title = w._("New residents per day and channel")
    series = {w.channel(ch): [per_day[d][ch] for d in days] for ch in channels}
    table = Table(
        title,
        [w._("Day"), *(w.channel(ch) for ch in channels), w._("Total")],
        [[w.day(d), *(w.number(per_day[d][ch]) for ch in channels), w.number(sum(per_day[d].values()))] for d in days],
    )
    svg = chart(pygal.StackedBar, title, [w.day(d) for d in days], series)
    return Section(
        "participation",
        w._("Participation over time"),
        [w._("Residents who wrote for the first time, by the channel they first wrote on.")],
        [Chart("new-residents", title, svg, table)],
    )


def ideas(w: Words, stats: Statistics) -> Section:
    counts: dict[tuple[str | None, str | None], int] = {(t, d): n for t, d, n in stats.ideas}
    topics = w.options("topics", (t for t, _ in counts))
    districts = w.options("districts", (d for _, d in counts))
    if any(d is None for _, d in counts) and None not in districts:
        districts.append(None)
    title = w._("Ideas by district and topic")
    series = {w.option("topics", t): [counts.get((t, d), 0) for d in districts] for t in topics}
    rows = [
        [
            w.option("districts", d),
            *(w.number(counts.get((t, d), 0)) for t in topics),
            w.number(sum(counts.get((t, d), 0) for t in topics)),
        ]
        for d in districts
    ]
    table = Table(title, [w._("District"), *(w.option("topics", t) for t in topics), w._("Total")], rows)
    svg = chart(pygal.HorizontalStackedBar, title, [w.option("districts", d) for d in districts], series)
    return Section("ideas", w._("Ideas by topic and district"), [], [Chart("ideas", title, svg, table)])


def _funnel_table(w: Words, caption: str, first: str, rows: list[tuple[str, int, int, int]]) -> Table:
    return Table(
        caption,
        [first, w._("Started"), w._("Consented"), w._("% of started"), w._("Submitted an idea"), w._("% of started")],
        [[label, w.number(s), w.number(c), w.percent(c, s), w.number(i), w.percent(i, s)] for label, s, c, i in rows],
    )


def funnel(w: Words, stats: Statistics) -> Section:
    by_language: dict[str | None, list[int]] = defaultdict(lambda: [0, 0, 0])
    by_channel: dict[str | None, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in stats.funnel:
        for bucket in (by_language[row.language], by_channel[row.channel]):
            bucket[0] += row.started
            bucket[1] += row.consented
            bucket[2] += row.with_idea
    steps = (w._("Started"), w._("Consented"), w._("Submitted an idea"))
    charts = []
    for slug, title, first, keys, label in (
        (
            "funnel-language",
            w._("From first message to idea, by language"),
            w._("Language"),
            [k for k in w.languages(by_language) if k in by_language],
            w.language,
        ),
        (
            "funnel-channel",
            w._("From first message to idea, by channel"),
            w._("Channel"),
            sorted(by_channel, key=lambda c: c or ""),
            w.channel,
        ),
    ):
        groups: dict[str | None, list[int]] = by_language if slug == "funnel-language" else by_channel
        labels = [label(k) for k in keys]
        series = {step: [groups[k][i] for k in keys] for i, step in enumerate(steps)}
        table = _funnel_table(w, title, first, [(label(k), *groups[k]) for k in keys])  # type: ignore[misc]
        charts.append(Chart(slug, title, chart(pygal.Bar, title, labels, series), table))
    order = {code: i for i, code in enumerate(w.languages(r.language for r in stats.funnel))}
    both = sorted(stats.funnel, key=lambda r: (order.get(r.language, 0), r.channel or ""))
    combined = _funnel_table(
        w,
        w._("From first message to idea, by language and channel"),
        w._("Language and channel"),
        [
            (
                w._("{language} on {channel}", language=w.language(r.language), channel=w.channel(r.channel)),
                r.started,
                r.consented,
                r.with_idea,
            )
            for r in both
        ],
    )
    return Section(
        "funnel",
        w._("Where residents drop out"),
        [
            w._(
                "Started: wrote to the bot. Consented: agreed to the privacy notice. "
                "Submitted an idea: sent at least one idea."
            )
        ],
        charts,
        [combined],
    )


def _reach_chart(
    w: Words,
    slug: str,
    title: str,
    first: str,
    keys: list[str | None],
    label: Any,
    counts: dict[str | None, int],
    reference: ReferenceTable | None,
) -> Chart:
    total = sum(counts.values())
    labels = [label(k) for k in keys]
    series: dict[str, list[float | None]] = {
        w._("Share of participants (%)"): [round(100 * counts.get(k, 0) / total, 1) if total else 0.0 for k in keys]
    }
    head = [first, w._("Participants"), w._("Share of participants")]
    if reference is not None:
        series[w._("Share of population (%)")] = [
            round(100 * s, 1) if (s := reference.share(k or "")) is not None else None for k in keys
        ]
        head += [w._("Population"), w._("Share of population")]
    rows = []
    for k in keys:
        row = [label(k), w.number(counts.get(k, 0)), w.percent(counts.get(k, 0), total)]
        if reference is not None:
            people = reference.people.get(k or "")
            row += [w.number(people) if people is not None else "–", w.share(reference.share(k or ""))]
        rows.append(row)
    return Chart(slug, title, chart(pygal.HorizontalBar, title, labels, series), Table(title, head, rows))


def _source(w: Words, table: ReferenceTable) -> str:
    return w._("Source: {source}, as of {date}.", source=table.source, date=w.day(table.as_of))


def reach(w: Words, stats: Statistics, reference: ReferenceFigures) -> Section:
    districts = dict(stats.districts)
    consented: Counter[str | None] = Counter()
    for row in stats.funnel:
        consented[row.language] += row.consented
    section = Section(
        "reach",
        w._("Whom the process reaches"),
        [
            w._(
                "A participant's district is the district of their ideas (someone with ideas in two districts "
                "counts in both); their language is the one they chose, among those who consented."
            )
        ],
    )
    section.charts.append(
        _reach_chart(
            w,
            "reach-district",
            w._("Participants and population by district"),
            w._("District"),
            [d for d in w.options("districts", districts) if d is not None],
            lambda d: w.option("districts", d),
            dict(districts),
            reference.districts,
        )
    )
    if reference.districts is not None:
        section.notes.append(_source(w, reference.districts))
    known_languages = reference.languages.people if reference.languages else {}
    section.charts.append(
        _reach_chart(
            w,
            "reach-language",
            w._("Participants and population by language"),
            w._("Language"),
            [k for k in w.languages(consented) if consented.get(k) or k in known_languages],
            w.language,
            dict(consented),
            reference.languages,
        )
    )
    if reference.languages is not None:
        section.notes.append(_source(w, reference.languages))
        if reference.languages.approximation == "citizenship":
            counted = "; ".join(f"{w.language(k)}: {v}" for k, v in reference.languages.counted.items())
            section.notes.append(
                w._(
                    "No statistics count the languages people speak: the population by language is approximated "
                    "by citizenship ({counted}).",
                    counted=counted,
                )
            )
    section.charts.extend(who_speaks(w, stats))
    section.tables.append(_actor_channels(w, stats))
    section.notes.append(
        w._(
            "Groups of fewer than {n} residents are not shown as a number: they could single someone out. "
            "Where the other figures of a row would give such a group away, a larger one is not shown either.",
            n=MIN_GROUP,
        )
    )
    section.charts.append(partners(w, stats))
    return section


def who_speaks(w: Words, stats: Statistics) -> list[Chart]:
    groups: Counter[str] = Counter()
    for group, _channel, n in stats.actor_groups:
        groups[group] += n
    ages = Counter(dict(stats.age_bands))
    out = []
    for slug, kind, title, first, counts in (
        ("actor-groups", "actor_groups", w._("Participants by actor group"), w._("Actor group"), groups),
        ("age-bands", "age_bands", w._("Participants by age"), w._("Age"), ages),
    ):
        keys = [k for k in w.options(kind, counts) if k is not None]
        labels = [w.option(kind, k) for k in keys]
        shown = [counts.get(k, 0) if counts.get(k, 0) >= MIN_GROUP else None for k in keys]
        rows = [[w.option(kind, k), w.protected(counts.get(k, 0))] for k in keys]
        table = Table(title, [first, w._("Residents")], rows)
        out.append(Chart(slug, title, chart(pygal.HorizontalBar, title, labels, {w._("Residents"): shown}), table))
    return out


def protect_row(counts: list[int]) -> list[int | None]:
    """A row of counts whose total is published elsewhere: None for each count under MIN_GROUP,
    and, while the hidden ones would add up to a number from 1 to MIN_GROUP - 1 (the total minus
    the shown ones), the smallest shown one too — else the row would give the small group away."""
    shown: list[int | None] = [n if n >= MIN_GROUP else None for n in counts]
    while 0 < sum(n for n, s in zip(counts, shown, strict=True) if s is None) < MIN_GROUP:
        rest = [i for i, s in enumerate(shown) if s is not None]
        if not rest:
            break
        shown[min(rest, key=lambda i: counts[i])] = None
    return shown


def _actor_channels(w: Words, stats: Statistics) -> Table:
    cells = {(g, c): n for g, c, n in stats.actor_groups}
    groups = [g for g in w.options("actor_groups", (g for g, _ in cells)) if g is not None]
    channels = sorted({c for _, c in cells}, key=lambda c: c or "")
    rows = []
    for g in groups:
        counts = [cells.get((g, c), 0) for c in channels]
        shown = protect_row(counts)
        rows.append(
            [
                w.option("actor_groups", g),
                *(
                    w.protected(n) if s is not None or n < MIN_GROUP else w._("not shown")
                    for n, s in zip(counts, shown, strict=True)
                ),
            ]
        )
    return Table(
        w._("Participants by actor group and channel"), [w._("Actor group"), *(w.channel(c) for c in channels)], rows
    )


def partners(w: Words, stats: Statistics) -> Chart:
    title = w._("Residents brought by outreach partners")
    steps = (w._("Started"), w._("Consented"), w._("Submitted an idea"))
    rows = [(p.name, p.started, p.consented, p.with_idea) for p in stats.partners]
    series = {step: [r[i + 1] for r in rows] for i, step in enumerate(steps)}
    svg = chart(pygal.HorizontalBar, title, [r[0] for r in rows], series)
    return Chart("partners", title, svg, _funnel_table(w, title, w._("Partner"), rows))


def statements(w: Words, stats: Statistics) -> Section:
    overall: dict[str, Counter[str]] = defaultdict(Counter)
    by_language: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    by_channel: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for statement, rating, language, channel, n in stats.ratings:
        overall[statement][rating] += n
        by_language[(statement, language)][rating] += n
        by_channel[(statement, channel)][rating] += n
    keys = [s for s in w.options("statements", overall) if s is not None]
    ratings = list(RATINGS) + sorted({r for c in overall.values() for r in c if r not in RATINGS})

    def label(r: str) -> str:
        return w._(RATINGS[r]) if r in RATINGS else r

    def cells(c: Counter[str]) -> list[str]:
        total = sum(c.values())
        return [f"{w.number(c[r])} ({w.percent(c[r], total)})" for r in ratings] + [w.number(total)]

    title = w._("Ratings of the draft's statements")
    series = {label(r): [overall[s][r] for s in keys] for r in ratings}
    head = [w._("Statement"), *(label(r) for r in ratings), w._("Total")]
    table = Table(title, head, [[w.option("statements", s), *cells(overall[s])] for s in keys])
    svg = chart(pygal.HorizontalStackedBar, title, [w.option("statements", s) for s in keys], series)
    extra = []
    for caption, first, groups, name in (
        (w._("Ratings by language"), w._("Language"), by_language, w.language),
        (w._("Ratings by channel"), w._("Channel"), by_channel, w.channel),
    ):
        rows = [
            [w.option("statements", s), name(g), *cells(groups[(s, g)])]
            for s in keys
            for g in sorted({g for (s2, g) in groups if s2 == s})
        ]
        extra.append(Table(caption, [head[0], first, *head[1:]], rows, row_headers=2))
    chart_ = Chart("ratings", title, svg, table)
    return Section("statements", w._("What residents think of the draft"), [], [chart_], extra)


def _campaign(w: Words, key: str) -> str:
    kind, _, rest = key.partition(":")
    phase_id, _, offset = rest.partition(":")
    phase = w.kz.flows.process.phase(phase_id)
    name = w.flows_tr.gettext(phase.name) if phase else phase_id
    if kind == "reminder":
        return w._("Reminder {offset} before the end of {phase}", offset=offset, phase=name)
    if kind == "announce":
        return w._("Announcement: {phase}", phase=name)
    return w._("Broadcast {key}", key=rest[:8])


def deliveries(w: Words, stats: Statistics) -> Section:
    campaigns: dict[str, Counter[str]] = defaultdict(Counter)
    for key, status, n in stats.deliveries:
        campaigns[key][STAGES.get(status, "waiting")] += n
    keys = sorted(campaigns)
    stages = {
        "delivered": w._("Delivered"),
        "sent": w._("Sent, not yet confirmed"),
        "waiting": w._("Waiting"),
        "failed": w._("Failed"),
        "not sent": w._("Not sent"),
    }
    title = w._("Delivery of reminders, announcements and broadcasts")
    labels = [_campaign(w, k) for k in keys]
    series = {stages[s]: [campaigns[k][s] for k in keys] for s in stages}
    rows = []
    for k, label in zip(keys, labels, strict=True):
        c = campaigns[k]
        total = sum(c.values())
        rows.append([label, w.number(total), *(w.number(c[s]) for s in stages), w.percent(c["delivered"], total)])
    head = [w._("Message"), w._("Queued"), *stages.values(), w._("Delivery rate")]
    svg = chart(pygal.HorizontalStackedBar, title, labels, series)
    return Section(
        "delivery",
        w._("Reminders and broadcasts"),
        [
            w._(
                "Messages per resident (a text split into parts counts once). Queued: all of them; "
                "delivered: confirmed by the channel (or read in the web chat); sent: handed to the channel, "
                "not yet confirmed; not sent: expired, skipped or cancelled."
            )
        ],
        [Chart("delivery", title, svg, Table(title, head, rows))],
    )


def sections(w: Words, stats: Statistics, reference: ReferenceFigures, zone: ZoneInfo) -> list[Section]:
    return [
        participation(w, stats, zone),
        ideas(w, stats),
        funnel(w, stats),
        reach(w, stats, reference),
        statements(w, stats),
        deliveries(w, stats),
    ]
