"""Dialogues as data: load the YAML files in ``FLOWS_DIR`` into typed flows.

A flow file looks like::

    id: idea
    nodes:
      topic:
        kind: ask_choice
        text: "Which field is your idea about?"
        options: topics
        save_as: topic
        next: idea_text

Node ids are explicit and stable (``flow.node``), so renaming code never
orphans a stored session. Every problem is reported as ``file:line: message``
(``flow_files.py`` reads and checks the files; loading raises :class:`FlowError`
with all of them). This module is the model the engine walks.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bot.conversation.phases import Process

NODE_KINDS = ("say", "ask_choice", "ask_text", "ask_media", "rate_statements", "branch", "gate", "action", "end")
ACTIONS = (
    "set_language",
    "record_consent",
    "decline_consent",
    "set_updates",
    "store_idea",
    "store_profile",
    "nothing_open",
    "take_kept_idea",
    "drop_kept_idea",
)
IDEA_ANSWER = "idea"  # the answer store_idea stores as the idea's text (and free text may become)
MEANINGS = ("yes", "no", "unsure", "skip")  # what a choice means, so yes/no words and emoji pick it
OPTION_LISTS = ("languages", "topics", "districts", "statements", "actor_groups", "age_bands")
# option lists kept in a file named otherwise than the list: "who speaks" (flows/actors.yaml)
OPTION_FILES = {"actor_groups": "actors.yaml", "age_bands": "actors.yaml"}
MEDIA_KINDS = ("voice", "photo")


class FlowError(Exception):
    """The flows folder has problems; ``problems`` lists them as ``file:line: message``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Choice:
    value: str
    label: str  # msgid
    next: str | None = None
    returns_to: str | None = None  # come back here after the target node is answered
    dialogue: str | None = None  # shown only while this dialogue's phase is open
    means: str | None = None  # "yes", "no" or "unsure": the answer words of that meaning pick this choice
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=False)  # language ("*": any) -> words


@dataclass(frozen=True)
class Node:
    id: str  # qualified: "flow.node"
    kind: str
    line: int
    file: str
    text: str | None = None  # msgid
    comment_text: str | None = None  # rate_statements: the optional comment question
    sms_text: str | None = None  # a shorter wording for channels where every character costs (SMS)
    sms_choices: bool = True  # False: with sms_text, the numbered list is left out on SMS (names are typed)
    params: dict[str, str] = field(default_factory=dict)  # placeholder -> "$var" or literal
    choices: tuple[Choice, ...] = ()
    options: str | None = None  # one of OPTION_LISTS
    save_as: str | None = None
    next: str | None = None
    min_length: int = 1
    max_length: int = 1000
    accept_media: tuple[str, ...] = ()
    optional: bool = False
    multilingual: bool = False
    on: str | None = None
    cases: dict[str, str] = field(default_factory=dict)
    default: str | None = None
    do: str | None = None
    dialogue: str | None = None  # gate: whose phase must be open
    upcoming_text: str | None = None  # gate: msgid with {date}
    closed_text: str | None = None  # gate: msgid with {date}
    nothing_open: str | None = None  # ask_choice: where to go when none of its dialogues' phases is open

    @property
    def flow(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def waits_for_input(self) -> bool:
        return self.kind in ("ask_choice", "ask_text", "ask_media", "rate_statements")


@dataclass(frozen=True)
class Option:
    id: str
    label: str  # msgid, or an endonym for languages
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=False)  # language ("*": any) -> words
    means: str | None = None  # "yes", "no", "unsure", "skip": those answer words pick it
    years: tuple[int, int] | None = None  # an age band's ages: a typed age ("34") picks it


@dataclass(frozen=True)
class Contact:
    """A person residents can reach (process.yaml ``contact``); ``hours`` is a msgid."""

    phone: str
    email: str
    hours: str


@dataclass(frozen=True)
class Language:
    code: str  # BCP 47, e.g. "de", "ar", "de-x-ls"
    name: str  # endonym, never translated
    locale: str  # Babel locale used for dates, numbers and plurals
    catalog: str  # folder name under i18n/
    direction: str = "ltr"
    script: str = "Latn"
    letters: str = ""
    greetings: tuple[str, ...] = ()


@dataclass(frozen=True)
class FlowSet:
    """Everything in ``FLOWS_DIR``: flows, option lists and languages."""

    nodes: dict[str, Node]
    entry: str  # first node for a new resident
    menu: str  # where MENU leads once consent is given
    languages: tuple[Language, ...]
    options: dict[str, tuple[Option, ...]]
    consent_version: str
    operator: str = ""
    contact: Contact | None = None
    publication_url: str = ""
    offer_idea: str | None = None  # the node that offers to take free text as an idea (process.yaml)
    process: Process = field(default_factory=Process)
    whatsapp_templates: dict[str, str] = field(default_factory=dict)  # language -> Content SID
    sources: tuple[Path, ...] = ()

    def node(self, node_id: str) -> Node:
        return self.nodes[node_id]

    def language(self, code: str | None) -> Language | None:
        for lang in self.languages:
            if lang.code == code:
                return lang
        return None

    @property
    def default_language(self) -> Language:
        return self.languages[0]

    def choices_of(self, node: Node) -> tuple[Choice, ...]:
        if node.options:
            return tuple(
                Choice(value=o.id, label=o.label, next=node.next, aliases=o.aliases, means=o.means)
                for o in self.options.get(node.options, ())
            )
        return node.choices

    def msgids(self) -> Iterator[tuple[str, str, int]]:
        """Every translatable text with the file and line it comes from."""
        for node in self.nodes.values():
            if node.text:
                yield node.text, node.file, node.line
            if node.comment_text:
                yield node.comment_text, node.file, node.line
            if node.sms_text:
                yield node.sms_text, node.file, node.line
            for extra in (node.upcoming_text, node.closed_text):
                if extra:
                    yield extra, node.file, node.line
            if not node.options or node.kind == "rate_statements":
                for choice in node.choices:
                    yield choice.label, node.file, node.line
        for kind, opts in self.options.items():
            if kind == "languages":
                continue
            for opt in opts:
                yield opt.label, OPTION_FILES.get(kind, f"{kind}.yaml"), 0
        if self.contact is not None:
            yield self.contact.hours, "process.yaml", 0
        for phase in self.process.phases:
            for text in (phase.name, phase.description, phase.announcement):
                if text:
                    yield text, "process.yaml", phase.line
