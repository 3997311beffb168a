"""Checking the nodes of all flow files against each other: what each node kind
needs, that every target exists, and (when nothing else is wrong) that every
node can be reached from the entry or the menu. Every problem is
``file:line: node 'id': message``, in the order the nodes were read."""

from __future__ import annotations

from bot.conversation.flows import ACTIONS, MEDIA_KINDS, OPTION_LISTS, Choice, Node, Option


class NodeChecks:
    """The checks of every node against the whole set; problems in the order they are found."""

    def __init__(self, nodes: dict[str, Node], options: dict[str, tuple[Option, ...]], problems: list[str]) -> None:
        self.nodes = nodes
        self.options = options
        self.problems = problems

    def problem(self, node: Node, message: str) -> None:
        self.problems.append(f"{node.file}:{node.line}: node {node.id!r}: {message}")

    def target(self, node: Node, target: str | None, what: str) -> None:
        if target is None:
            self.problem(node, f"{what} has no target")
        elif target not in self.nodes:
            self.problem(node, f"{what} leads to unknown node {target!r}")

    def check(self, node: Node) -> None:
        if node.kind in ("say", "ask_choice", "ask_text", "ask_media", "rate_statements") and not node.text:
            self.problem(node, f"{node.kind} needs a text")
        by_kind = {
            "say": self._say,
            "rate_statements": self._rate_statements,
            "ask_choice": self._ask_choice,
            "ask_text": self._ask_text,
            "ask_media": self._ask_media,
            "branch": self._branch,
            "gate": self._gate,
            "action": self._action,
        }.get(node.kind)
        if by_kind is not None:
            by_kind(node)
        for key, ref in node.params.items():
            if not ref.startswith("$"):
                self.problem(node, f"parameter {key!r} must name an answer like $topic")

    def _say(self, node: Node) -> None:
        self.target(node, node.next, "next")

    def _rate_statements(self, node: Node) -> None:
        if node.options != "statements":
            self.problem(node, "rate_statements needs options: statements")
        if not node.choices:
            self.problem(node, "rate_statements needs choices (the ratings)")
        if not node.comment_text:
            self.problem(node, "rate_statements needs a comment_text")
        if not self.options.get("statements"):
            self.problem(node, "there are no statements to rate (flows/statements.yaml)")
        self.target(node, node.next, "next")

    def _ask_choice(self, node: Node) -> None:
        if node.options and node.options not in OPTION_LISTS:
            self.problem(node, f"unknown options list {node.options!r}")
        elif node.options and not self.options.get(node.options):
            self.problem(node, f"the list of {node.options} is missing or empty")
        if node.optional and not any(c.means == "skip" for c in self._choices(node)):
            self.problem(node, "an optional ask_choice needs a choice with means: skip (what a skip stores)")
        if node.options and node.choices:
            self.problem(node, "use either options or choices, not both")
        if not node.options and not node.choices:
            self.problem(node, "ask_choice needs choices or options")
        values = [c.value for c in node.choices]
        if len(values) != len(set(values)):
            self.problem(node, "two choices have the same value")
        for c in node.choices:
            self.target(node, c.next or node.next, f"choice {c.value!r}")
            if c.returns_to is not None and c.returns_to not in self.nodes:
                self.problem(node, f"choice {c.value!r} returns to unknown node {c.returns_to!r}")
        if node.options:
            self.target(node, node.next, "next")
        if node.nothing_open is not None:
            self.target(node, node.nothing_open, "nothing_open")

    def _choices(self, node: Node) -> list[Option] | tuple[Choice, ...]:
        return list(self.options.get(node.options, ())) if node.options else node.choices

    def _media_kinds(self, node: Node) -> None:
        bad = [m for m in node.accept_media if m not in MEDIA_KINDS]
        if bad:
            self.problem(node, f"unknown media kind {bad[0]!r} (voice or photo)")

    def _ask_text(self, node: Node) -> None:
        self.target(node, node.next, "next")
        if not 0 < node.min_length <= node.max_length:
            self.problem(node, "min_length must be at least 1 and at most max_length")
        if not node.save_as:
            self.problem(node, "ask_text needs save_as")
        self._media_kinds(node)

    def _ask_media(self, node: Node) -> None:
        self.target(node, node.next, "next")
        self._media_kinds(node)
        if not node.accept_media:
            self.problem(node, "ask_media needs accept_media")

    def _branch(self, node: Node) -> None:
        if not node.on:
            self.problem(node, "branch needs 'on'")
        for value, target in node.cases.items():
            self.target(node, target, f"case {value!r}")
        self.target(node, node.default, "default")

    def _gate(self, node: Node) -> None:
        if not node.dialogue or not node.upcoming_text or not node.closed_text:
            self.problem(node, "gate needs dialogue, upcoming_text and closed_text")
        self.target(node, node.next, "next")
        self.target(node, node.default, "default")

    def _action(self, node: Node) -> None:
        self.target(node, node.next, "next")
        if node.do not in ACTIONS:
            self.problem(node, f"unknown action {node.do!r} (one of {', '.join(ACTIONS)})")


def _reachable(nodes: dict[str, Node], starts: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        nid = todo.pop()
        if nid in seen or nid not in nodes:
            continue
        seen.add(nid)
        n = nodes[nid]
        todo.extend(t for t in (n.next, n.default, n.nothing_open, *n.cases.values()) if t)
        todo.extend(t for c in n.choices for t in (c.next, c.returns_to) if t)
    return seen


def validate(
    fs_nodes: dict[str, Node],
    options: dict[str, tuple[Option, ...]],
    entry: str,
    menu: str,
    process_file: str,
    problems: list[str],
) -> None:
    checks = NodeChecks(fs_nodes, options, problems)
    for node in fs_nodes.values():
        checks.check(node)
    for name, target in (("entry", entry), ("menu", menu)):
        if target not in fs_nodes:
            problems.append(f"{process_file}:1: {name} leads to unknown node {target!r}")
    if problems:
        return
    seen = _reachable(fs_nodes, [entry, menu])
    for node in fs_nodes.values():
        if node.id not in seen:
            problems.append(f"{node.file}:{node.line}: node {node.id!r} is unreachable")
