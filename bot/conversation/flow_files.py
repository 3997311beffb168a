"""Reading and checking the flow files in ``FLOWS_DIR``: YAML with line
numbers, option lists and languages, each dialogue, the process (phases) and
the WhatsApp templates. Every problem is reported as ``file:line: message``;
:func:`load_flows` raises :class:`FlowError` with all of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from bot.conversation.flows import (
    ACTIONS,
    MEDIA_KINDS,
    NODE_KINDS,
    OPTION_LISTS,
    Choice,
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


# --- loading -----------------------------------------------------------------


def _load_options(folder: Path, problems: list[str]) -> tuple[dict[str, tuple[Option, ...]], tuple[Language, ...]]:
    options: dict[str, tuple[Option, ...]] = {}
    languages: list[Language] = []
    lang_path = folder / "languages.yaml"
    data = _read_yaml(lang_path, problems) if lang_path.exists() else None
    if data is None:
        problems.append(f"{lang_path}:1: the list of languages is missing")
    else:
        for item in data.get("languages") or []:
            line = item.get("__line__", 1)
            try:
                languages.append(
                    Language(
                        code=str(item["code"]),
                        name=str(item["name"]),
                        locale=str(item.get("locale") or item["code"]),
                        catalog=str(item.get("catalog") or item["code"]),
                        direction=str(item.get("direction") or "ltr"),
                        script=str(item.get("script") or "Latn"),
                        letters=str(item.get("letters") or ""),
                        greetings=tuple(" ".join(str(g).casefold().split()) for g in item.get("greetings") or ()),
                    )
                )
            except KeyError as exc:
                problems.append(f"{lang_path}:{line}: language needs {exc.args[0]!r}")
                continue
            if languages[-1].direction not in ("ltr", "rtl"):
                problems.append(f"{lang_path}:{line}: direction must be ltr or rtl")
        if not languages:
            problems.append(f"{lang_path}:1: no languages listed")
    options["languages"] = tuple(Option(lang.code, lang.name) for lang in languages)

    for kind in ("topics", "districts", "statements"):
        path = folder / f"{kind}.yaml"
        data = _read_yaml(path, problems) if path.exists() else None
        if data is None:
            problems.append(f"{path}:1: the list of {kind} is missing")
            continue
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
            items.append(Option(oid, str(item[key])))
        options[kind] = tuple(items)
    return options, tuple(languages)


def _qualify(flow_id: str, target: Any) -> str | None:
    target = _str(target)
    if target is None:
        return None
    return target if "." in target else f"{flow_id}.{target}"


def _load_flow(path: Path, problems: list[str]) -> tuple[str | None, dict[str, Node]]:
    data = _read_yaml(path, problems)
    if not isinstance(data, dict):
        if data is not None:
            problems.append(f"{path}:1: a flow file must be a mapping with id and nodes")
        return None, {}
    file = str(path)
    flow_id = _str(data.get("id"))
    if not flow_id or "." in flow_id:
        problems.append(f"{file}:1: flow needs an id without dots")
        return None, {}
    nodes_data = data.get("nodes")
    if not isinstance(nodes_data, dict) or len(nodes_data) <= 2:
        problems.append(f"{file}:{data['__line__']}: flow {flow_id!r} has no nodes")
        return flow_id, {}
    nodes: dict[str, Node] = {}
    for name, spec in nodes_data.items():
        if name in ("__line__", "__keylines__"):
            continue
        if not isinstance(spec, dict):
            problems.append(f"{file}:{nodes_data['__line__']}: node {name!r} must be a mapping")
            continue
        line = nodes_data["__keylines__"].get(name, spec["__line__"])
        kind = spec.get("kind")
        if kind not in NODE_KINDS:
            problems.append(f"{file}:{line}: node {name!r} has unknown kind {kind!r} (one of {', '.join(NODE_KINDS)})")
            continue
        choices = []
        for c in spec.get("choices") or []:
            if not isinstance(c, dict) or c.get("value") is None or c.get("label") is None:
                problems.append(f"{file}:{line}: node {name!r}: each choice needs a value and a label")
                continue
            choices.append(
                Choice(
                    value=_str(c["value"]) or "",
                    label=str(c["label"]),
                    next=_qualify(flow_id, c.get("next")),
                    returns_to=_qualify(flow_id, c.get("return")),
                    dialogue=_str(c.get("dialogue")),
                )
            )
        params = {k: str(v) for k, v in (spec.get("params") or {}).items() if not str(k).startswith("__")}
        cases = {
            _str(k) or "": _qualify(flow_id, v) or ""
            for k, v in (spec.get("cases") or {}).items()
            if not str(k).startswith("__")
        }
        try:
            node = Node(
                id=f"{flow_id}.{name}",
                kind=kind,
                line=line,
                file=file,
                text=_str(spec.get("text")),
                comment_text=_str(spec.get("comment_text")),
                params=params,
                choices=tuple(choices),
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
            )
        except (TypeError, ValueError) as exc:
            problems.append(f"{file}:{line}: node {name!r}: {exc}")
            continue
        nodes[node.id] = node
    return flow_id, nodes


def _validate(
    fs_nodes: dict[str, Node],
    options: dict[str, tuple[Option, ...]],
    entry: str,
    menu: str,
    process_file: str,
    problems: list[str],
) -> None:
    def target_ok(node: Node, target: str | None, what: str) -> None:
        if target is None:
            problems.append(f"{node.file}:{node.line}: node {node.id!r}: {what} has no target")
        elif target not in fs_nodes:
            problems.append(f"{node.file}:{node.line}: node {node.id!r}: {what} leads to unknown node {target!r}")

    for node in fs_nodes.values():
        where = f"{node.file}:{node.line}: node {node.id!r}"
        if node.kind in ("say", "ask_choice", "ask_text", "ask_media", "rate_statements") and not node.text:
            problems.append(f"{where}: {node.kind} needs a text")
        if node.kind == "rate_statements":
            if node.options != "statements":
                problems.append(f"{where}: rate_statements needs options: statements")
            if not node.choices:
                problems.append(f"{where}: rate_statements needs choices (the ratings)")
            if not node.comment_text:
                problems.append(f"{where}: rate_statements needs a comment_text")
            if not options.get("statements"):
                problems.append(f"{where}: there are no statements to rate (flows/statements.yaml)")
            target_ok(node, node.next, "next")
        elif node.kind == "ask_choice":
            if node.options and node.options not in OPTION_LISTS:
                problems.append(f"{where}: unknown options list {node.options!r}")
            if node.options and node.choices:
                problems.append(f"{where}: use either options or choices, not both")
            if not node.options and not node.choices:
                problems.append(f"{where}: ask_choice needs choices or options")
            values = [c.value for c in node.choices]
            if len(values) != len(set(values)):
                problems.append(f"{where}: two choices have the same value")
            for c in node.choices:
                target_ok(node, c.next or node.next, f"choice {c.value!r}")
                if c.returns_to is not None and c.returns_to not in fs_nodes:
                    problems.append(f"{where}: choice {c.value!r} returns to unknown node {c.returns_to!r}")
            if node.options:
                target_ok(node, node.next, "next")
        elif node.kind in ("say", "ask_text", "ask_media", "action"):
            target_ok(node, node.next, "next")
        if node.kind == "ask_text":
            if not 0 < node.min_length <= node.max_length:
                problems.append(f"{where}: min_length must be at least 1 and at most max_length")
            if not node.save_as:
                problems.append(f"{where}: ask_text needs save_as")
        if node.kind in ("ask_text", "ask_media"):
            bad = [m for m in node.accept_media if m not in MEDIA_KINDS]
            if bad:
                problems.append(f"{where}: unknown media kind {bad[0]!r} (voice or photo)")
        if node.kind == "ask_media" and not node.accept_media:
            problems.append(f"{where}: ask_media needs accept_media")
        if node.kind == "branch":
            if not node.on:
                problems.append(f"{where}: branch needs 'on'")
            for value, target in node.cases.items():
                target_ok(node, target, f"case {value!r}")
            target_ok(node, node.default, "default")
        if node.kind == "gate":
            if not node.dialogue or not node.upcoming_text or not node.closed_text:
                problems.append(f"{where}: gate needs dialogue, upcoming_text and closed_text")
            target_ok(node, node.next, "next")
            target_ok(node, node.default, "default")
        if node.kind == "action" and node.do not in ACTIONS:
            problems.append(f"{where}: unknown action {node.do!r} (one of {', '.join(ACTIONS)})")
        for key, ref in node.params.items():
            if not ref.startswith("$"):
                problems.append(f"{where}: parameter {key!r} must name an answer like $topic")

    for name, target in (("entry", entry), ("menu", menu)):
        if target not in fs_nodes:
            problems.append(f"{process_file}:1: {name} leads to unknown node {target!r}")
    if problems:
        return
    # reachability from the entry and the menu
    seen: set[str] = set()
    todo = [entry, menu]
    while todo:
        nid = todo.pop()
        if nid in seen or nid not in fs_nodes:
            continue
        seen.add(nid)
        n = fs_nodes[nid]
        todo.extend(t for t in (n.next, n.default, *n.cases.values()) if t)
        todo.extend(t for c in n.choices for t in (c.next, c.returns_to) if t)
    for node in fs_nodes.values():
        if node.id not in seen:
            problems.append(f"{node.file}:{node.line}: node {node.id!r} is unreachable")


def _whatsapp_templates(folder: Path, problems: list[str]) -> dict[str, str]:
    path = folder / "whatsapp.yaml"
    if not path.exists():
        return {}
    data = _read_yaml(path, problems) or {}
    templates = data.get("templates") or {}
    return {str(k): str(v) for k, v in templates.items() if not str(k).startswith("__") and v}


def load_flows(folder: Path, zone: ZoneInfo = ZoneInfo("Europe/Berlin")) -> FlowSet:
    """Load and validate every flow; raise FlowError listing all problems."""
    problems: list[str] = []
    folder = Path(folder)
    options, languages = _load_options(folder, problems)
    process_path = folder / "process.yaml"
    process = _read_yaml(process_path, problems) if process_path.exists() else None
    if not isinstance(process, dict):
        problems.append(f"{process_path}:1: process.yaml with entry and menu is missing")
        process = {}
    nodes: dict[str, Node] = {}
    sources = []
    for path in sorted(folder.glob("*.yaml")):
        if path.name in (
            "languages.yaml",
            "topics.yaml",
            "districts.yaml",
            "statements.yaml",
            "process.yaml",
            "whatsapp.yaml",
        ):
            continue
        sources.append(path)
        flow_id, flow_nodes = _load_flow(path, problems)
        for nid, node in flow_nodes.items():
            if nid in nodes:
                problems.append(f"{node.file}:{node.line}: node {nid!r} is defined twice")
            nodes[nid] = node
    entry = _str(process.get("entry")) or "main.start"
    menu = _str(process.get("menu")) or "main.menu"
    _validate(nodes, options, entry, menu, str(process_path), problems)
    process_data = load_process(process, zone, str(process_path), problems, {n.split(".")[0] for n in nodes})
    templates = _whatsapp_templates(folder, problems)
    if not _str(process.get("operator")):
        problems.append(
            f"{process_path}:1: operator is missing (who runs this bot; residents are told when they send HELP)"
        )
    if problems:
        raise FlowError(problems)
    return FlowSet(
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
