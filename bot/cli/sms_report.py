"""What every question costs by SMS, per language (part of ``python -m bot flows check``).

Every SMS segment costs the city money, and a first message of five segments
loses people. This renders the prompt of every waiting node (``ask_choice``,
``ask_text``, ``ask_media``, ``rate_statements``) exactly as the SMS channel
sends it — the real :class:`Renderer` with the capabilities of every channel
the registry lists as billed per segment (``channels/twilio_sms.py``:
``compact``, so a node's ``sms_text`` instead of its ``text``; the choices as
a numbered list) — and counts its segments with the channel's own counter.

No prompt may take more than :data:`MAX_SEGMENTS` segments in any language; the
consent question (the node whose answer leads to ``record_consent``) is named
separately, being the first real message a new resident gets.

Placeholders get realistic values: a statement's real text with
``{number}`` = 1 and ``{total}`` = the number of statements; the summary's
``{idea}``, which is the resident's own text, a short idea of about 40
characters in the resident's language (:data:`SAMPLE_IDEAS`), and the longest
topic and district labels.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from bot.config import Settings
from bot.conversation import texts as M
from bot.conversation.flow_files import load_flows
from bot.conversation.flows import FlowSet, Node
from bot.conversation.i18n import Catalogs, Translator
from bot.conversation.render import Renderer
from bot.conversation.step import Msg, Reply, ReplyChoice
from bot.values import Capabilities
from channels.registry import specs

MAX_SEGMENTS = 3
# a resident's short idea (~40 characters) in each language, for the summary's {idea}
SAMPLE_IDEAS = {
    "de": "Mehr Bänke und Schatten auf dem Spielplatz",
    "de-x-ls": "Mehr Bänke und Schatten auf dem Spielplatz",
    "en": "More benches and shade at the playground",
    "tr": "Oyun parkına daha çok bank ve gölge lazım",
    "ar": "نحتاج مزيداً من المقاعد والظل في الملعب",
    "fa": "نیمکت و سایه بیشتر در زمین بازی بچه‌ها",
    "uk": "Більше лавок і тіні на дитячому майданчику",
    "ru": "Больше скамеек и тени на детской площадке",
    "pl": "Więcej ławek i cienia na placu zabaw",
    "vi": "Thêm ghế và bóng mát ở sân chơi trẻ em",
}
SAMPLE_VALUES: dict[str, Any] = {"number": 1, "reference": "K7F3A", "date": date(2027, 1, 2), "count": 3}
WAITING = ("ask_choice", "ask_text", "ask_media", "rate_statements")


def billed_by_segment() -> list[tuple[str, Capabilities]]:
    """The channels whose every segment costs (SMS), by name, from the registry."""
    return [(spec.name, spec.capabilities) for spec in specs() if spec.capabilities.rate_unit == "segment"]


@dataclass(frozen=True)
class Prompt:
    """One question as residents get it; :meth:`reply` builds it in a language."""

    name: str  # e.g. "idea.summary" or "feedback.statements #2"
    node: Node
    consent: bool
    text: str  # msgid
    choices: tuple[ReplyChoice, ...]
    short: str | None = None  # the node's sms_text
    params: Mapping[str, Any] = field(default_factory=dict)
    flows: FlowSet | None = field(default=None, compare=False)  # set: the node's own params, with sample values

    def reply(self, tr: Translator) -> Reply:
        params = _params(self.flows, self.node, tr) if self.flows is not None else dict(self.params)
        return Reply(
            self.text,
            tr.language.code,
            params,
            self.choices,
            short=self.short,
            short_without_choices=not self.node.sms_choices,
        )


def segment_count(renderer: Renderer, reply: Reply, caps: Capabilities) -> int:
    """The SMS segments the channel bills for this reply (all its parts)."""
    units = caps.units or (lambda _text: 1)
    parts = renderer.render_parts(reply, caps)
    return sum(part.segments if part.segments is not None else units(part.text) for part in parts)


def sms_texts(renderer: Renderer, reply: Reply, caps: Capabilities) -> list[str]:
    """The parts of the reply as the SMS channel sends them."""
    return [part.text for part in renderer.render_parts(reply, caps)]


def _is_consent(flows: FlowSet, node: Node) -> bool:
    for choice in node.choices:
        if not choice.next:
            continue
        target = flows.nodes.get(choice.next) or flows.nodes.get(f"{node.flow}.{choice.next}")
        if target is not None and target.kind == "action" and target.do == "record_consent":
            return True
    return False


def _longest_label(flows: FlowSet, kind: str, tr: Translator) -> str:
    labels = [o.label for o in flows.options.get(kind, ())]
    return max(labels, key=lambda label: len(tr.gettext(label)), default="")


def _params(flows: FlowSet, node: Node, tr: Translator) -> dict[str, Any]:
    """Realistic values for the node's placeholders."""
    out: dict[str, Any] = {}
    for key, ref in node.params.items():
        name = ref.lstrip("$")
        if name == "idea" or key == "idea":
            out[key] = SAMPLE_IDEAS.get(tr.language.code, SAMPLE_IDEAS["en"])
        elif name in ("topic", "district"):
            out[key] = Msg(_longest_label(flows, f"{name}s", tr))
        elif name in SAMPLE_VALUES:
            out[key] = SAMPLE_VALUES[name]
        else:
            out[key] = ref
    return out


def _choices(flows: FlowSet, node: Node) -> tuple[ReplyChoice, ...]:
    """Every choice the node can show (the menu's are all shown while their phases are open)."""
    if node.kind in ("ask_text", "ask_media"):
        return (ReplyChoice("skip", M.SKIP),) if node.optional else ()
    translate = node.options != "languages"
    return tuple(ReplyChoice(c.value, c.label, translate) for c in flows.choices_of(node))


def prompts(flows: FlowSet) -> Iterator[Prompt]:
    """Every question a resident can be asked, in flow file order."""
    for node in flows.nodes.values():
        if node.kind not in WAITING:
            continue
        if node.kind == "rate_statements":
            items = flows.options.get("statements", ())
            ratings = tuple(ReplyChoice(c.value, c.label) for c in node.choices)
            for i, statement in enumerate(items):
                params = {"statement": Msg(statement.label), "number": i + 1, "total": len(items)}
                yield Prompt(f"{node.id} #{i + 1}", node, False, node.text or "", ratings, node.sms_text, params)
            if node.comment_text:
                skip = (ReplyChoice("skip", M.SKIP),)
                yield Prompt(f"{node.id} comment", node, False, node.comment_text, skip)
            continue
        yield Prompt(
            node.id,
            node,
            _is_consent(flows, node),
            node.text or "",
            _choices(flows, node),
            node.sms_text,
            flows=flows if node.params else None,
        )


def _language_groups(flows: FlowSet) -> list[tuple[str, ...]]:
    """Who gets a multilingual question before a language is known: the default pair (``()``),
    and each group of languages one script leaves open (Arabic or Farsi, Ukrainian or Russian)."""
    by_script: dict[str, list[str]] = {}
    for lang in flows.languages:
        by_script.setdefault(lang.script, []).append(lang.code)
    return [(), *(tuple(codes) for script, codes in by_script.items() if script != "Latn" and len(codes) > 1)]


@dataclass(frozen=True)
class Row:
    prompt: Prompt
    counts: dict[str, int]  # language code (or "+"-joined codes for a multilingual question) -> segments


def measure(flows: FlowSet, catalogs: Catalogs, caps: Capabilities) -> list[Row]:
    renderer = Renderer(catalogs)
    rows: list[Row] = []
    for prompt in prompts(flows):
        # in the resident's language (a multilingual question too, once LANGUAGE reopens it)
        counts = {tr.language.code: segment_count(renderer, prompt.reply(tr), caps) for tr in catalogs}
        if prompt.node.multilingual:  # and before a language is known: in a few languages at once
            for group in _language_groups(flows):
                reply = prompt.reply(catalogs.get(group[0] if group else None))
                choices = tuple(c for c in reply.choices if not group or c.value in group)
                reply = Reply(
                    reply.msgid,
                    None,
                    reply.params,
                    choices,
                    languages=group,
                    short=reply.short,
                    short_without_choices=reply.short_without_choices,
                )
                shown = group or (catalogs.default_code, "en")
                counts["+".join(dict.fromkeys(shown))] = segment_count(renderer, reply, caps)
        rows.append(Row(prompt, counts))
    return rows


def table(rows: list[Row], codes: list[str], channel: str = "sms") -> list[str]:
    """A compact table: one row per question, one column per language; ``!`` marks a count over the limit."""
    width = max([len(r.prompt.name) + (2 if r.prompt.consent else 0) for r in rows] + [6])
    cols = [max(len(code), 3) for code in codes]
    lines = [
        f"{channel}: segments per question (at most {MAX_SEGMENTS}; numbered choices included; the summary with a "
        "~40-character idea and the longest topic and district):",
        "  " + "question".ljust(width) + " " + " ".join(code.rjust(w) for code, w in zip(codes, cols, strict=True)),
    ]

    def cell(n: int | None, w: int) -> str:
        return ("-" if n is None else f"{n}{'!' if n > MAX_SEGMENTS else ''}").rjust(w)

    multilingual: list[str] = []
    for row in rows:
        name = row.prompt.name + (" *" if row.prompt.consent else "")
        cells = " ".join(cell(row.counts.get(code), w) for code, w in zip(codes, cols, strict=True))
        lines.append(f"  {name.ljust(width)} {cells}")
        groups = [(who, n) for who, n in row.counts.items() if who not in codes]
        if groups:
            shown = ", ".join(f"{who} {cell(n, 1).strip()}" for who, n in groups)
            multilingual.append(f"  {row.prompt.name} before a language is chosen, in several at once: {shown}")
    lines += multilingual
    lines.append("  * the consent question")
    return lines


def problems_of(rows: list[Row], channel: str = "sms") -> list[str]:
    out: list[str] = []
    for row in rows:
        node = row.prompt.node
        for code, n in row.counts.items():
            if n <= MAX_SEGMENTS:
                continue
            what = "the consent question" if row.prompt.consent else f"the question {row.prompt.name!r}"
            fix = "shorten the translation of its sms_text" if node.sms_text else "shorten its text or its choices"
            where = f"{node.file}:{node.line}: [{code}] {channel}"
            out.append(f"{where}: {what} takes {n} segments (at most {MAX_SEGMENTS}): {fix}")
    return out


def report(settings: Settings) -> tuple[list[str], list[str]]:
    """(problems as ``file:line: [language] message``, the table's lines); nothing if the flows do not load."""
    from bot.conversation.flows import FlowError

    try:
        flows = load_flows(settings.flows_dir, settings.zone)
    except FlowError:
        return [], []  # the flow check reports why
    catalogs = Catalogs.load(flows, settings.i18n_dir)
    codes = [lang.code for lang in flows.languages]
    problems: list[str] = []
    lines: list[str] = []
    for channel, caps in billed_by_segment():
        rows = measure(flows, catalogs, caps)
        problems += problems_of(rows, channel)
        lines += table(rows, codes, channel)
    return problems, lines
