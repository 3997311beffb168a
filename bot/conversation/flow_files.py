"""Reading and checking the flow files in ``FLOWS_DIR``: YAML with line
numbers, option lists and languages, each dialogue, the process (phases) and
the WhatsApp templates (:mod:`bot.conversation.flow_checks` checks the nodes
against each other). Every problem is reported as ``file:line: message``;
:func:`load_flows` raises :class:`FlowError` with all of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from bot.conversation.flow_checks import validate
from bot.conversation.flows import (
    MEANINGS,
    NODE_KINDS,
    OPTION_FILES,
    Choice,
    Contact,
    FlowError,
    FlowSet,
    Language,
    Node,
    Option,
)
from bot.conversation.phases import load_process

# --- YAML with line numbers -------------------------------------------------


class LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping: dict[str, Any] = loader.construct_mapping(node, deep=True)  # type: ignore[assignment]
    mapping["__line__"] = node.start_mark.line + 1
    mapping["__keylines__"] = {loader.construct_object(key): key.start_mark.line + 1 for key, _ in node.value}
    return mapping


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: Path, problems: list[str]) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=LineLoader)  # noqa: S506
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problems.append(f"{path}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}")
    except OSError as exc:
        problems.append(f"{path}:1: cannot read: {exc.strerror}")
    return None


def _str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):  # YAML turns yes/no into booleans
        return "yes" if value else "no"
    return str(value)


# --- loading: languages and option lists ----------------------------------------


def _language(item: dict[str, Any]) -> Language:
    """One entry of languages.yaml; KeyError names a missing key."""
    return Language(
        code=str(item["code"]),
        name=str(item["name"]),
        locale=str(item.get("locale") or item["code"]),
        catalog=str(item.get("catalog") or item["code"]),
        direction=str(item.get("direction") or "ltr"),
        script=str(item.get("script") or "Latn"),
        letters=str(item.get("letters") or ""),
        greetings=tuple(" ".join(str(g).casefold().split()) for g in item.get("greetings") or ()),
    )


def _load_languages(folder: Path, problems: list[str]) -> list[Language]:
    lang_path = folder / "languages.yaml"
    data = _read_yaml(lang_path, problems) if lang_path.exists() else None
    if data is None:
        problems.append(f"{lang_path}:1: the list of languages is missing")
        return []
    languages: list[Language] = []
    for item in data.get("languages") or []:
        line = item.get("__line__", 1)
        try:
            languages.append(_language(item))
        except KeyError as exc:
            problems.append(f"{lang_path}:{line}: language needs {exc.args[0]!r}")
            continue
        if languages[-1].direction not in ("ltr", "rtl"):
            problems.append(f"{lang_path}:{line}: direction must be ltr or rtl")
    if not languages:
        problems.append(f"{lang_path}:1: no languages listed")
    return languages


def _load_option_list(folder: Path, kind: str, problems: list[str], required: bool = True) -> tuple[Option, ...] | None:
    """topics, districts, statements, actor_groups or age_bands; None when the file is
    missing (a problem only when ``required``)."""
    path = folder / OPTION_FILES.get(kind, f"{kind}.yaml")
    data = _read_yaml(path, problems) if path.exists() else None
    if data is None:
        if required:
            problems.append(f"{path}:1: the list of {kind} is missing")
        return None
    items = []
    seen: set[str] = set()
    key = "text" if kind == "statements" else "label"
    for item in data.get(kind) or []:
        line = item.get("__line__", 1)
        if "id" not in item or key not in item:
            problems.append(f"{path}:{line}: each entry needs an id and a {key}")
            continue
        oid = _str(item["id"]) or ""
        if oid in seen:
            problems.append(f"{path}:{line}: duplicate id {oid!r}")
        seen.add(oid)
        means = _str(item.get("means"))
        if means is not None and means not in MEANINGS:
            problems.append(f"{path}:{line}: means must be one of {', '.join(MEANINGS)}")
        aliases = _aliases(item.get("aliases"), f"{path}:{line}", problems)
        items.append(Option(oid, str(item[key]), aliases, means, _years(item.get("years"), f"{path}:{line}", problems)))
    _check_aliases(items, str(path), problems)
    _check_years(items, str(path), problems)
    return tuple(items)


def _years(data: Any, where: str, problems: list[str]) -> tuple[int, int] | None:
    """``years: [18, 29]``: the ages of an age band, first and last included."""
    if data is None:
        return None
    if not (isinstance(data, list) and len(data) == 2 and all(type(y) is int and y >= 0 for y in data)):
        problems.append(f"{where}: years must be two ages, the first and the last, e.g. [18, 29]")
        return None
    if data[0] > data[1]:
        problems.append(f"{where}: years must start with the lower age")
        return None
    return data[0], data[1]


def _check_years(items: list[Option], file: str, problems: list[str]) -> None:
    """No age may fall into two bands (a typed age would be taken for the wrong one)."""
    spans = sorted((o.years, o.id) for o in items if o.years is not None)
    for (first, a), (second, b) in zip(spans, spans[1:], strict=False):
        if second[0] <= first[1]:
            problems.append(f"{file}:1: the years of {a!r} and {b!r} overlap")


def _aliases(data: Any, where: str, problems: list[str]) -> dict[str, tuple[str, ...]]:
    """``aliases``: a list (any language) or a mapping language -> list of words."""
    if data is None:
        return {}
    if isinstance(data, list):
        data = {"*": data}
    if not isinstance(data, dict):
        problems.append(f"{where}: aliases must be a list of words or a mapping of language to words")
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for lang, words in data.items():
        if str(lang).startswith("__"):
            continue
        if not isinstance(words, list) or not all(isinstance(w, (str, int)) and str(w).strip() for w in words):
            problems.append(f"{where}: aliases for {lang!r} must be a list of words")
            continue
        out[str(lang)] = tuple(str(w) for w in words)
    return out


def _check_aliases(items: list[Option] | list[Choice], file: str, problems: list[str]) -> None:
    """No word may stand for two entries in one language (a resident would be sent the wrong way)."""
    from bot.conversation.matching import fold

    owner: dict[tuple[str, str], str] = {}
    for item in items:
        oid = item.id if isinstance(item, Option) else item.value
        for lang, words in item.aliases.items():
            for word in words:
                for scope in ("*", lang) if lang != "*" else ("*",):
                    key = (scope, fold(word))
                    if key in owner and owner[key] != oid:
                        problems.append(
                            f"{file}:1: alias {word!r} ({lang}) is given to both {owner[key]!r} and {oid!r}"
                        )
                    owner[key] = oid


def _load_options(folder: Path, problems: list[str]) -> tuple[dict[str, tuple[Option, ...]], tuple[Language, ...]]:
    languages = _load_languages(folder, problems)
    options: dict[str, tuple[Option, ...]] = {"languages": tuple(Option(lang.code, lang.name) for lang in languages)}
    for kind in ("topics", "districts", "statements"):
        items = _load_option_list(folder, kind, problems)
        if items is not None:
            options[kind] = items
    for kind in ("actor_groups", "age_bands"):  # optional: a process may not ask who speaks
        items = _load_option_list(folder, kind, problems, required=False)
        if items is not None:
            options[kind] = items
    return options, tuple(languages)


# --- loading: one flow file ----------------------------------------------------------


def _qualify(flow_id: str, target: Any) -> str | None:
    target = _str(target)
    if target is None:
        return None
    return target if "." in target else f"{flow_id}.{target}"


def _flow_header(path: Path, problems: list[str]) -> tuple[str | None, dict[str, Any] | None]:
    """The flow's id and its ``nodes`` mapping (None where the file says nothing usable)."""
    data = _read_yaml(path, problems)
    if not isinstance(data, dict):
        if data is not None:
            problems.append(f"{path}:1: a flow file must be a mapping with id and nodes")
        return None, None
    flow_id = _str(data.get("id"))
    if not flow_id or "." in flow_id:
        problems.append(f"{path}:1: flow needs an id without dots")
        return None, None
    nodes_data = data.get("nodes")
    if not isinstance(nodes_data, dict) or len(nodes_data) <= 2:
        problems.append(f"{path}:{data['__line__']}: flow {flow_id!r} has no nodes")
        return flow_id, None
    return flow_id, nodes_data


def _choices(flow_id: str, name: str, spec: dict[Any, Any], where: str, problems: list[str]) -> tuple[Choice, ...]:
    choices = []
    for c in spec.get("choices") or []:
        if not isinstance(c, dict) or c.get("value") is None or c.get("label") is None:
            problems.append(f"{where}: node {name!r}: each choice needs a value and a label")
            continue
        choices.append(
            Choice(
                value=_str(c["value"]) or "",
                label=str(c["label"]),
                next=_qualify(flow_id, c.get("next")),
                returns_to=_qualify(flow_id, c.get("return")),
                dialogue=_str(c.get("dialogue")),
                means=_str(c.get("means")),
                aliases=_aliases(c.get("aliases"), where, problems),
            )
        )
        if choices[-1].means is not None and choices[-1].means not in MEANINGS:
            problems.append(f"{where}: node {name!r}: means must be one of {', '.join(MEANINGS)}")
    _check_aliases(choices, where.rsplit(":", 1)[0], problems)
    return tuple(choices)


def _node(flow_id: str, name: str, spec: dict[Any, Any], file: str, line: int, problems: list[str]) -> Node | None:
    """One node of a flow file, or None (with the problem noted) when it cannot be read."""
    kind = spec.get("kind")
    if kind not in NODE_KINDS:
        problems.append(f"{file}:{line}: node {name!r} has unknown kind {kind!r} (one of {', '.join(NODE_KINDS)})")
        return None
    choices = _choices(flow_id, name, spec, f"{file}:{line}", problems)
    params = {k: str(v) for k, v in (spec.get("params") or {}).items() if not str(k).startswith("__")}
    cases = {
        _str(k) or "": _qualify(flow_id, v) or ""
        for k, v in (spec.get("cases") or {}).items()
        if not str(k).startswith("__")
    }
    try:
        return Node(
            id=f"{flow_id}.{name}",
            kind=kind,
            line=line,
            file=file,
            text=_str(spec.get("text")),
            comment_text=_str(spec.get("comment_text")),
            sms_text=_str(spec.get("sms_text")),
            sms_choices=bool(spec.get("sms_choices", True)),
            params=params,
            choices=choices,
            options=_str(spec.get("options")),
            save_as=_str(spec.get("save_as")),
            next=_qualify(flow_id, spec.get("next")),
            min_length=int(spec.get("min_length", 1)),
            max_length=int(spec.get("max_length", 1000)),
            accept_media=tuple(spec.get("accept_media") or ()),
            optional=bool(spec.get("optional", False)),
            multilingual=bool(spec.get("multilingual", False)),
            on=_str(spec.get("on", spec.get(True))),  # YAML 1.1 reads a bare on as true
            cases=cases,
            default=_qualify(flow_id, spec.get("default")),
            do=_str(spec.get("do")),
            dialogue=_str(spec.get("dialogue")),
            upcoming_text=_str(spec.get("upcoming_text")),
            closed_text=_str(spec.get("closed_text")),
            nothing_open=_qualify(flow_id, spec.get("nothing_open")),
        )
    except (TypeError, ValueError) as exc:
        problems.append(f"{file}:{line}: node {name!r}: {exc}")
        return None


def _load_flow(path: Path, problems: list[str]) -> tuple[str | None, dict[str, Node]]:
    flow_id, nodes_data = _flow_header(path, problems)
    if flow_id is None or nodes_data is None:
        return flow_id, {}
    file = str(path)
    nodes: dict[str, Node] = {}
    for name, spec in nodes_data.items():
        if name in ("__line__", "__keylines__"):
            continue
        if not isinstance(spec, dict):
            problems.append(f"{file}:{nodes_data['__line__']}: node {name!r} must be a mapping")
            continue
        line = nodes_data["__keylines__"].get(name, spec["__line__"])
        node = _node(flow_id, name, spec, file, line, problems)
        if node is not None:
            nodes[node.id] = node
    return flow_id, nodes


def _whatsapp_templates(folder: Path, problems: list[str]) -> dict[str, str]:
    path = folder / "whatsapp.yaml"
    if not path.exists():
        return {}
    data = _read_yaml(path, problems) or {}
    templates = data.get("templates") or {}
    return {str(k): str(v) for k, v in templates.items() if not str(k).startswith("__") and v}


_NOT_FLOWS = (
    "languages.yaml",
    "topics.yaml",
    "districts.yaml",
    "statements.yaml",
    "actors.yaml",
    "process.yaml",
    "whatsapp.yaml",
)


def _read_process(path: Path, problems: list[str]) -> dict[str, Any]:
    process = _read_yaml(path, problems) if path.exists() else None
    if not isinstance(process, dict):
        problems.append(f"{path}:1: process.yaml with entry and menu is missing")
        return {}
    return process


def _load_dialogues(sources: list[Path], problems: list[str]) -> dict[str, Node]:
    """The nodes of every flow file, each id once."""
    nodes: dict[str, Node] = {}
    for path in sources:
        _flow_id, flow_nodes = _load_flow(path, problems)
        for nid, node in flow_nodes.items():
            if nid in nodes:
                problems.append(f"{node.file}:{node.line}: node {nid!r} is defined twice")
            nodes[nid] = node
    return nodes


def _contact(process: dict[str, Any], file: str, problems: list[str]) -> Contact | None:
    """The human contact residents are told about; HELP must lead to a person."""
    data = process.get("contact")
    line = data.get("__line__", 1) if isinstance(data, dict) else 1
    if not isinstance(data, dict) or not all(_str(data.get(k)) for k in ("phone", "email", "hours")):
        problems.append(
            f"{file}:{line}: contact needs phone, email and hours (a person residents can reach; "
            "HELP and the moderation notices name it)"
        )
        return None
    return Contact(str(data["phone"]), str(data["email"]), str(data["hours"]))


def load_flows(folder: Path, zone: ZoneInfo = ZoneInfo("Europe/Berlin")) -> FlowSet:
    """Load and validate every flow; raise FlowError listing all problems."""
    problems: list[str] = []
    folder = Path(folder)
    options, languages = _load_options(folder, problems)
    process_path = folder / "process.yaml"
    process = _read_process(process_path, problems)
    sources = [path for path in sorted(folder.glob("*.yaml")) if path.name not in _NOT_FLOWS]
    nodes = _load_dialogues(sources, problems)
    entry = _str(process.get("entry")) or "main.start"
    menu = _str(process.get("menu")) or "main.menu"
    validate(nodes, options, entry, menu, str(process_path), problems)
    process_data = load_process(process, zone, str(process_path), problems, {n.split(".")[0] for n in nodes})
    templates = _whatsapp_templates(folder, problems)
    if not _str(process.get("operator")):
        problems.append(
            f"{process_path}:1: operator is missing (who runs this bot; residents are told when they send HELP)"
        )
    contact = _contact(process, str(process_path), problems)
    offer_idea = _str(process.get("offer_idea"))
    if offer_idea is not None and offer_idea not in nodes:
        problems.append(f"{process_path}:1: offer_idea leads to unknown node {offer_idea!r}")
    if problems:
        raise FlowError(problems)
    return FlowSet(
        contact=contact,
        publication_url=(_str(process.get("publication_url")) or "").strip(),
        offer_idea=offer_idea,
        nodes=nodes,
        entry=entry,
        menu=menu,
        languages=languages,
        options=options,
        consent_version=_str(process.get("consent_version")) or "1",
        operator=_str(process.get("operator")) or "",
        whatsapp_templates=templates,
        process=process_data,
        sources=tuple(sources),
    )
