"""The channel boundary, checked on the source: the core never branches on a
provider's name nor imports a provider's library or a channel's module, and
the conversation package does no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROVIDERS = {"telegram", "sms", "whatsapp", "webchat", "console"}
PROVIDER_LIBS = {"telegram", "twilio", "phonenumbers"}
ALLOWED_CHANNEL_MODULES = {"channels.registry", "channels.base"}
IO_LIBS = {"aiohttp", "sqlalchemy", "asyncio", "channels"}


def _files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
            if node.module == "channels":  # from channels import telegram
                found += [(node.lineno, f"channels.{alias.name}") for alias in node.names]
    return found


def _provider_literals(node: ast.AST) -> list[str]:
    """Provider names among a comparison operand (a literal, or a tuple/list/set of them)."""
    items = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
    return [i.value for i in items if isinstance(i, ast.Constant) and i.value in PROVIDERS]


def _branches_on_names(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for operand in [node.left, *node.comparators]:
                found += [(node.lineno, name) for name in _provider_literals(operand)]
        elif isinstance(node, ast.match_case):
            found += [
                (node.pattern.lineno, v.value.value)
                for v in ast.walk(node.pattern)
                if isinstance(v, ast.MatchValue) and isinstance(v.value, ast.Constant) and v.value.value in PROVIDERS
            ]
        elif isinstance(node, ast.Call):  # look-ups by name, e.g. capabilities("telegram")
            found += [(node.lineno, a.value) for a in node.args if isinstance(a, ast.Constant) and a.value in PROVIDERS]
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and node.slice.value in PROVIDERS:
            found.append((node.lineno, node.slice.value))
    return found


def _where(path: Path, line: int, what: str) -> str:
    return f"{path.relative_to(ROOT)}:{line}: {what}"


def test_no_core_code_branches_on_a_provider_name() -> None:
    problems = [
        _where(path, line, f"compares with or looks up {name!r}")
        for path in _files("bot")
        for line, name in _branches_on_names(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert problems == []


def test_the_core_imports_no_provider_library_and_only_the_registry_of_channels() -> None:
    problems = []
    for path in _files("bot"):
        for line, module in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            top = module.split(".")[0]
            if top in PROVIDER_LIBS:
                problems.append(_where(path, line, f"imports {module}"))
            elif top == "channels" and module != "channels" and module not in ALLOWED_CHANNEL_MODULES:
                problems.append(_where(path, line, f"imports {module}"))
    assert problems == []


def test_the_conversation_package_does_no_io() -> None:
    problems = [
        _where(path, line, f"imports {module}")
        for path in _files("bot/conversation")
        for line, module in _imports(ast.parse(path.read_text(encoding="utf-8")))
        if module.split(".")[0] in IO_LIBS
    ]
    assert problems == []


def test_the_checks_catch_what_they_claim() -> None:
    """The checks above would fail on the code this refactoring removed."""
    bad = ast.parse(
        "from channels import sms_text\nimport twilio.rest\n"
        'if channel != "sms": pass\nx = c in ("telegram", "sms")\ny = capabilities("telegram")\n'
        'match name:\n    case "whatsapp": pass\n'
    )
    assert [n for _, n in _branches_on_names(bad)] == ["sms", "telegram", "sms", "telegram", "whatsapp"]
    assert ("channels.sms_text" in {m for _, m in _imports(bad)}) and ("twilio.rest" in {m for _, m in _imports(bad)})


# --- one-way house: layers, and no import circle ---------------------------------------

# lower layers never import higher ones; a module may import its own layer
LAYERS = [
    ("bot", "bot.values", "bot.metrics", "bot.config"),
    ("channels",),
    ("bot.conversation",),
    ("bot.storage",),
    ("bot.service",),
    ("bot.delivery",),
    ("bot.app",),
    ("bot.participation",),
    ("bot.web",),
    ("bot.cli", "bot.__main__"),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _layer(module: str) -> int | None:
    """The layer of the longest prefix that names the module."""
    best: tuple[int, int] | None = None
    for rank, prefixes in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[0]):
                best = (len(p), rank)
    return None if best is None else best[1]


def _runtime_imports(tree: ast.AST) -> list[str]:
    """Our modules that a file imports when it runs (not those only for type checkers)."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        found += [module for _, module in _imports(node)]
    return [m for m in found if m.split(".")[0] in ("bot", "channels")]


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for folder in ("bot", "channels") for p in _files(folder)}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for module in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            while module not in modules and "." in module:
                module = module.rsplit(".", 1)[0]
            if module in modules and module != name:
                targets.add(module)
        graph[name] = targets
    return graph


def test_every_module_has_a_layer_and_imports_only_downwards() -> None:
    graph = _graph()
    assert [m for m in graph if _layer(m) is None] == []
    upwards = [
        f"{m} imports {t}"
        for m, targets in graph.items()
        for t in sorted(targets)
        if _layer(t) > _layer(m)  # type: ignore[operator]
    ]
    assert upwards == []


def test_no_import_circle() -> None:
    graph = _graph()
    circles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                circles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert circles == []


def test_channels_import_neither_the_engine_nor_delivery() -> None:
    graph = _graph()
    allowed = {"bot.values", "bot.config"}
    wrong = [
        f"{m} imports {t}"
        for m, ts in graph.items()
        if m.startswith("channels")
        for t in ts
        if t.startswith("bot.") and t not in allowed
    ]
    assert wrong == []
