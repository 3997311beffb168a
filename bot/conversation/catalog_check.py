"""``python -m bot flows check``: flows valid, every used string translated."""

from __future__ import annotations

import re
import string

from bot.config import Settings
from bot.conversation import texts as messages
from bot.conversation.flow_files import load_flows
from bot.conversation.flows import FlowError, FlowSet
from bot.conversation.i18n import Contextual, Plural, check_catalogs, po_path, read_catalog

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def code_msgids() -> list[tuple[str, str]]:
    """The resident-facing strings defined in code (bot/conversation/texts.py)."""
    where = "bot/conversation/texts.py"
    out: list[tuple[str, str]] = []
    for name, value in vars(messages).items():
        if not name.isupper() or name == "GERMAN_KEYWORDS":
            continue
        if isinstance(value, str):
            out.append((value, where))
        elif isinstance(value, Plural):
            out.append((value.singular, where))
        elif isinstance(value, Contextual):
            out.append((f"{value.context}\x04{value.msgid}", where))
        elif isinstance(value, dict):
            out.extend((f"{c}\x04{m}", where) for c, m in value.values())
    return out


def required_msgids(flows: FlowSet) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    for msgid, file, line in flows.msgids():
        seen.setdefault(msgid, f"{file}:{line}")
    for msgid, where in code_msgids():
        seen.setdefault(msgid, where)
    return list(seen.items())


def _placeholders(text: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(text) if f} if "{" in text else set()


def check(settings: Settings) -> tuple[list[str], list[str]]:
    """Return (problems as file:line: message, summary lines per language)."""
    try:
        flows = load_flows(settings.flows_dir, settings.zone)
    except FlowError as exc:
        return exc.problems, []
    required = required_msgids(flows)
    problems: list[str] = []
    summary: list[str] = []
    for report in check_catalogs(flows, settings.i18n_dir, required):
        summary.append(
            f"{report.code}: {report.total - len(report.missing)}/{report.total} translated, "
            f"{len(report.missing)} missing, {len(report.fuzzy)} fuzzy"
        )
        for msgid, where in report.missing:
            problems.append(f"{report.path}:1: [{report.code}] missing translation of {msgid!r} (used at {where})")
        for msgid in report.fuzzy:
            problems.append(f"{report.path}:1: [{report.code}] fuzzy translation of {msgid!r}")
    # translations must keep the placeholders of their msgid
    for lang in flows.languages:
        path = po_path(settings.i18n_dir, lang.catalog)
        if not path.exists():
            continue
        try:
            catalog = read_catalog(path, locale=lang.locale)
        except Exception as exc:  # noqa: BLE001 - a broken .po is a problem to report
            problems.append(f"{path}:1: cannot read catalog: {exc}")
            continue
        for message in catalog:
            if not isinstance(message.id, str) or not isinstance(message.string, str) or not message.string:
                continue
            if _placeholders(message.string) != _placeholders(message.id):
                line = message.lineno or 1
                problems.append(
                    f"{path}:{line}: [{lang.code}] placeholders differ from the source in {message.id[:50]!r}"
                )
    return problems, summary
