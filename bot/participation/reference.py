"""Reference figures the organisers provide as data (``flows/reference/population.yaml``): how
many people live in each district and how many speak each language (approximated), to compare
with who takes part. Checked when loaded: every district and language must be one the flows
know, every figure a whole number of people, and the source and its date must be named."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.conversation.flows import FlowSet

REFERENCE_FILE = Path("reference") / "population.yaml"  # under FLOWS_DIR


class ReferenceError(ValueError):
    """The reference file is wrong; ``problems`` says where, one line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class ReferenceTable:
    """People per id (district or language code) out of ``total``, with the source named."""

    source: str
    as_of: dt.date
    total: int
    people: dict[str, int]
    approximation: str | None = None  # e.g. "citizenship": what was counted instead
    counted: dict[str, str] = field(default_factory=dict)  # id -> what its figure adds up

    def share(self, key: str) -> float | None:
        n = self.people.get(key)
        return None if n is None or not self.total else n / self.total


@dataclass(frozen=True)
class ReferenceFigures:
    districts: ReferenceTable | None = None
    languages: ReferenceTable | None = None


def _table(data: Any, where: str, known: set[str], problems: list[str]) -> ReferenceTable | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        problems.append(f"{where}: must be a mapping with source, as_of, total and people")
        return None
    source = data.get("source")
    if not isinstance(source, str) or not source.strip():
        problems.append(f"{where}: source is missing (name where the figures come from)")
    as_of = data.get("as_of")
    if not isinstance(as_of, dt.date):
        problems.append(f"{where}: as_of must be a date like 2023-12-31 (the figures' reference date)")
    total = data.get("total")
    if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
        problems.append(f"{where}: total must be a whole number of people above 0")
        total = 0
    people: dict[str, int] = {}
    raw = data.get("people")
    if not isinstance(raw, dict) or not raw:
        problems.append(f"{where}: people must map ids to numbers of people")
        raw = {}
    for key, n in raw.items():
        key = str(key)
        if key not in known:
            problems.append(f"{where}: {key!r} is not one of {', '.join(sorted(known))}")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            problems.append(f"{where}: {key}: {n!r} is not a whole number of people")
            continue
        people[key] = n
    if total and sum(people.values()) > total:
        problems.append(f"{where}: the figures add up to more than total ({sum(people.values())} > {total})")
    counted = data.get("counted") or {}
    if not isinstance(counted, dict):
        problems.append(f"{where}: counted must map ids to what their figure adds up")
        counted = {}
    approximation = data.get("approximation")
    if problems:
        return None
    return ReferenceTable(
        source=str(source).strip(),
        as_of=as_of,  # type: ignore[arg-type]  # checked above
        total=int(total),
        people=people,
        approximation=str(approximation) if approximation else None,
        counted={str(k): str(v) for k, v in counted.items()},
    )


def parse_reference(data: Any, flows: FlowSet, where: str = str(REFERENCE_FILE)) -> ReferenceFigures:
    """The reference figures in ``data`` (the file's YAML), checked against the flows."""
    if data is None:
        return ReferenceFigures()
    if not isinstance(data, dict):
        raise ReferenceError([f"{where}: must be a mapping with districts and/or languages"])
    problems: list[str] = []
    unknown = sorted(set(data) - {"districts", "languages"})
    if unknown:
        problems.append(f"{where}: unknown section(s) {', '.join(unknown)} (districts, languages)")
    districts = {o.id for o in flows.options.get("districts", ()) if o.means != "skip"}
    languages = {lang.code for lang in flows.languages}
    found = ReferenceFigures(
        districts=_table(data.get("districts"), f"{where}: districts", districts, problems),
        languages=_table(data.get("languages"), f"{where}: languages", languages, problems),
    )
    if problems:
        raise ReferenceError(problems)
    return found


def load_reference(flows_dir: Path, flows: FlowSet) -> ReferenceFigures:
    """``FLOWS_DIR/reference/population.yaml``, checked; none when the file is absent."""
    path = Path(flows_dir) / REFERENCE_FILE
    if not path.exists():
        return ReferenceFigures()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ReferenceError([f"{path}: {exc}"]) from exc
    return parse_reference(data, flows, str(path))
